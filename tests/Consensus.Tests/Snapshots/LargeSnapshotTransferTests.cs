using System.Security.Cryptography;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;
using RaftSnapshot = EmbeddedRaft.Consensus.Messages.SnapshotMetadata;
using SnapshotFile = EmbeddedRaft.Storage.Snapshots.SnapshotFileMetadata;

namespace EmbeddedRaft.Consensus.Tests.Snapshots;

/// <summary>
/// A Raft snapshot travels as its metadata in the message and its data out of band, as a stream:
/// the leader's host saves the application state to its snapshotter, streams it to a lagging
/// follower when the core asks for a snapshot message, the follower's host saves it before stepping
/// the message, and restores the application from the saved file when Ready names the snapshot.
/// Nothing along the way holds the data in memory, so a snapshot far larger than the memory the
/// whole exchange allocates goes through.
/// </summary>
public class LargeSnapshotTransferTests
{
    private const long SnapshotSizeBytes = 128L * 1024 * 1024;

    /// <summary>Every byte the leader's save, the transfer, the follower's save and its restore allocate together.</summary>
    private const long AllocationBudgetBytes = 8L * 1024 * 1024;

    private string _root = null!;

    [SetUp]
    public void CreateDirectory() => _root = Directory.CreateTempSubdirectory("embeddedraft-snapshot-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_root, recursive: true);

    [Test]
    public async Task ASnapshotSixteenTimesTheMemoryBudgetIsSavedSentAndRestoredWithinIt()
    {
        var fs = PhysicalFileSystem.Instance;
        using var leaderSnapshots = new Snapshotter(fs, Path.Combine(_root, "n1"));
        using var followerSnapshots = new Snapshotter(fs, Path.Combine(_root, "n3"));
        var cluster = new Cluster([1, 2, 3]);
        cluster.Isolated.Add(3);
        cluster.Campaign(1);
        for (int i = 0; i < 20; i++)
        {
            cluster.Propose(1, $"x{i}");
        }

        var leader = cluster.Nodes[1];
        ulong applied = leader.Applied;
        Assert.That(applied, Is.GreaterThanOrEqualTo(20UL));

        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);

        // The leader's host snapshots its application at the applied index and compacts the log.
        var conf = leader.Storage.InitialState().ConfState;
        var snapshot = leader.Storage.CreateSnapshot(applied, conf);
        await leaderSnapshots.SaveAsync(ToFileMetadata(snapshot), new ApplicationState(SnapshotSizeBytes, seed: applied));
        leader.Storage.Compact(applied);

        // Node 3 comes back; the leader's core can only catch it up with a snapshot.
        cluster.Isolated.Clear();
        byte[]? restoredHash = null;
        cluster.SnapshotTransport = async message =>
        {
            // Sending host: open the data of the snapshot the message names, stream it to the peer,
            // which saves it durably before it steps the message.
            using var loaded = (await leaderSnapshots.LoadNewestAsync()).Snapshot!;
            Assert.That(loaded.Metadata.Index, Is.EqualTo(message.Snapshot!.Index));
            await followerSnapshots.SaveAsync(loaded.Metadata, loaded.Data);
        };
        cluster.RestoreSnapshot = async (node, metadata) =>
        {
            // Receiving host, on Ready.Snapshot: restore the application from the saved file.
            using var loaded = (await followerSnapshots.LoadNewestAsync()).Snapshot!;
            Assert.That(loaded.Metadata.Index, Is.EqualTo(metadata.Index));
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[64 * 1024];
            for (int read; (read = await loaded.Data.ReadAsync(buffer)) > 0;)
            {
                hash.AppendData(buffer, 0, read);
            }

            restoredHash = hash.GetHashAndReset();
        };
        cluster.Propose(1, "after");
        cluster.TickAll(3);
        Assert.That(cluster.PendingSnapshotMessages, Is.EqualTo(1), "the leader sends node 3 one snapshot message");
        await cluster.DeliverSnapshotsAsync();
        cluster.Propose(1, "after-2");

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
        TestContext.Out.WriteLine($"snapshot {SnapshotSizeBytes:N0} bytes; allocated during save, send and restore: {allocated:N0} bytes");

        Assert.That(restoredHash, Is.EqualTo(ApplicationState.Hash(SnapshotSizeBytes, seed: applied)), "the follower restored the leader's state byte for byte");
        Assert.That(cluster.Nodes[3].Applied, Is.EqualTo(leader.Applied), "the follower caught up past the snapshot");
        Assert.That(cluster.Nodes[3].Storage.Snapshot(), Is.EqualTo(snapshot));
        Assert.That(allocated, Is.LessThan(AllocationBudgetBytes), "the data must stream, never sit in memory whole");
    }

    private static SnapshotFile ToFileMetadata(RaftSnapshot snapshot) =>
        new(snapshot.Index, snapshot.Term, MessageCodec.EncodeSnapshotMetadata(snapshot));

    /// <summary>Three RawNodes on memory storage, a host loop each, and a network whose snapshot messages go through a stream transport.</summary>
    private sealed class Cluster
    {
        private readonly List<Message> _pendingSnapshots = [];

        public Cluster(ulong[] voters)
        {
            foreach (ulong id in voters)
            {
                var storage = MemoryStorage.WithVoters(voters);
                Nodes[id] = new Host(new RawNode(new RaftOptions(id) { ElectionTimeoutTicks = 10, HeartbeatTimeoutTicks = 1, RandomSeed = id }, storage), storage);
            }
        }

        public Dictionary<ulong, Host> Nodes { get; } = [];

        public HashSet<ulong> Isolated { get; } = [];

        public Func<Message, Task>? SnapshotTransport { get; set; }

        public Func<Host, RaftSnapshot, Task>? RestoreSnapshot { get; set; }

        public int PendingSnapshotMessages => _pendingSnapshots.Count;

        public void TickAll(int ticks)
        {
            for (int i = 0; i < ticks; i++)
            {
                foreach (var host in Nodes.Values)
                {
                    host.Node.Tick();
                }

                Run();
            }
        }

        public void Campaign(ulong id)
        {
            Nodes[id].Node.Campaign();
            Run();
        }

        public void Propose(ulong id, string data)
        {
            Nodes[id].Node.Propose(System.Text.Encoding.UTF8.GetBytes(data));
            Run();
        }

        /// <summary>Streams every snapshot message's data, then delivers the messages (and all they cause).</summary>
        public async Task DeliverSnapshotsAsync()
        {
            while (_pendingSnapshots.Count > 0)
            {
                var message = _pendingSnapshots[0];
                _pendingSnapshots.RemoveAt(0);
                await SnapshotTransport!(message);
                Nodes[message.From].Node.ReportSnapshot(message.To, succeeded: true);
                var target = Nodes[message.To];
                target.Node.Step(message);
                Run(await target.HandleReadiesAsync(this));
            }
        }

        /// <summary>Delivers messages until the network is quiet; snapshot messages wait for <see cref="DeliverSnapshotsAsync"/>.</summary>
        public void Run(IEnumerable<Message>? sent = null)
        {
            var queue = new Queue<Message>(sent ?? []);
            foreach (var host in Nodes.Values)
            {
                host.HandleReadiesAsync(this).GetAwaiter().GetResult().ForEach(queue.Enqueue);
            }

            for (int guard = 0; queue.TryDequeue(out var m); guard++)
            {
                Assert.That(guard, Is.LessThan(100_000), "the network never quiesces");
                if (Isolated.Contains(m.To) || Isolated.Contains(m.From))
                {
                    continue;
                }

                if (m.Type == MessageType.Snapshot)
                {
                    _pendingSnapshots.Add(m);
                    continue;
                }

                Nodes[m.To].Node.Step(m);
                Nodes[m.To].HandleReadiesAsync(this).GetAwaiter().GetResult().ForEach(queue.Enqueue);
            }
        }

        public Task RestoreAsync(Host host, RaftSnapshot snapshot) => RestoreSnapshot!(host, snapshot);
    }

    /// <summary>A host loop that follows the Ready contract: restore and persist, send, apply, advance.</summary>
    private sealed class Host(RawNode node, MemoryStorage storage)
    {
        public RawNode Node { get; } = node;

        public MemoryStorage Storage { get; } = storage;

        public ulong Applied { get; private set; }

        public async Task<List<Message>> HandleReadiesAsync(Cluster cluster)
        {
            var messages = new List<Message>();
            while (Node.HasReady())
            {
                var rd = Node.GetReady();
                messages.AddRange(rd.Messages);
                if (rd.Snapshot is { } snapshot)
                {
                    await cluster.RestoreAsync(this, snapshot);
                    Storage.ApplySnapshot(snapshot);
                    Applied = snapshot.Index;
                }

                Storage.Append(rd.Entries.Span);
                if (rd.HardState is { } hs)
                {
                    Storage.SetHardState(hs);
                }

                messages.AddRange(rd.MessagesAfterPersist);
                foreach (var entry in rd.CommittedEntries.Span)
                {
                    Applied = entry.Index;
                }

                Node.Advance();
            }

            return messages;
        }
    }

    /// <summary>
    /// The application's state as a read-only stream of <c>length</c> pseudo-random bytes made on
    /// the fly (xorshift from a seed): as large as wanted, never in memory.
    /// </summary>
    private sealed class ApplicationState(long length, ulong seed) : Stream
    {
        private ulong _state = seed * 0x9E3779B97F4A7C15UL | 1;
        private long _position;

        public static byte[] Hash(long length, ulong seed)
        {
            using var stream = new ApplicationState(length, seed);
            return SHA256.HashData(stream);
        }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - _position) & ~7;
            for (int i = 0; i < n; i += 8)
            {
                _state ^= _state << 13;
                _state ^= _state >> 7;
                _state ^= _state << 17;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer[i..], _state);
            }

            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
