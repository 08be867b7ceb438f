using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The write pipeline of <see cref="RaftNode{TResult}"/>: the loop hands each Ready's records to the
/// log and goes on while a separate sync pipeline runs the fsync. What must still hold, with one
/// Ready in flight and with several: a node acknowledges entries only once its fsync of them is
/// done, a leader applies an entry only once it holds it durably, and meanwhile the loop keeps
/// working (a leader whose fsync hangs still commits through its followers). An fsync is held by
/// blocking the thread that flushes a node's write-ahead log (<see cref="FaultInjectingFileSystem.BeforeEntering"/>).
/// </summary>
public class RaftNodeWritePipelineTests
{
    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task AFollowerAcknowledgesEntriesOnlyOnceItsFsyncOfThemIsDone(int readiesInFlight)
    {
        await using var run = await PipelineCluster.StartAsync(seed: 1301 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        using var flush = run.HoldFlushesOf(follower);

        var proposal = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("held-on-follower")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var index = run.IndexOf(leader, "held-on-follower");

        Assert.That(run.AcknowledgedUpTo(follower), Is.LessThan(index), $"node {follower} acknowledged entry {index} before its fsync of it completed");

        flush.Release();
        await proposal.WaitAsync(Waits.Limit);
        await run.WaitUntilAcknowledgedAsync(follower, index);
    }

    [TestCase(1)]
    [TestCase(RaftNodeOptions.DefaultMaxReadiesInFlight)]
    public async Task ALeaderWhoseFsyncHangsStillCommitsThroughItsFollowersButAppliesOnlyOnceItIsDurable(int readiesInFlight)
    {
        await using var run = await PipelineCluster.StartAsync(seed: 1401 + readiesInFlight, readiesInFlight);
        var (leader, follower) = (run.Cluster.LeaderId(), run.Cluster.FollowerId());
        using var flush = run.HoldFlushesOf(leader);

        var proposal = run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("held-on-leader")).AsTask();
        await flush.Entered.WaitAsync(Waits.Limit);
        var index = run.IndexOf(leader, "held-on-leader");

        // The followers' acknowledgements commit the entry while the leader's own fsync hangs: its
        // loop keeps stepping them and tells the followers, which apply it.
        await run.Cluster.Machines[follower].WaitForAppliedAsync(index).WaitAsync(Waits.Limit);
        Assert.That(run.Cluster.Machines[leader].AppliedIndex, Is.LessThan(index), "the leader applied an entry it does not hold durably");
        Assert.That(proposal.IsCompleted, Is.False, "the proposal returned before the leader applied it");

        flush.Release();
        Assert.That(await proposal.WaitAsync(Waits.Limit), Is.GreaterThan(0));
        Assert.That(run.Cluster.Machines[leader].AppliedIndex, Is.GreaterThanOrEqualTo(index));
    }

    /// <summary>A three-node <see cref="HostCluster"/> whose transports record what each node sends.</summary>
    private sealed class PipelineCluster : IAsyncDisposable
    {
        private readonly Dictionary<ulong, RecordingTransport> _sent = [];

        private PipelineCluster(HostCluster cluster) => Cluster = cluster;

        public HostCluster Cluster { get; }

        public static async Task<PipelineCluster> StartAsync(int seed, int readiesInFlight)
        {
            var run = new PipelineCluster(new HostCluster(seed, o => o with { MaxReadiesInFlight = readiesInFlight }));
            ulong[] voters = [1, 2, 3];
            foreach (var id in voters)
            {
                var transport = new RecordingTransport(run.Cluster.Network.CreateTransport(id));
                run._sent[id] = transport;
                var machine = new RecordingStateMachine();
                run.Cluster.Nodes[id] = await RaftNode<long>.StartAsync(run.Cluster.Options(id, voters), machine, transport);
                run.Cluster.Machines[id] = machine;
            }

            await run.Cluster.WaitForLeaderAsync();

            // Settle: a first proposal applied everywhere, so that nothing else is being written.
            var leader = run.Cluster.LeaderId();
            await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("settle")).AsTask().WaitAsync(Waits.Limit);
            await run.Cluster.WaitForAllAppliedAsync(run.Cluster.Machines[leader].AppliedIndex);
            return run;
        }

        /// <summary>From now on, every flush of <paramref name="id"/>'s write-ahead log blocks until released.</summary>
        public FlushHold HoldFlushesOf(ulong id)
        {
            var hold = new FlushHold();
            var prefix = $"{HostCluster.DataDirectory(id)}/wal";
            Cluster.Disk.BeforeEntering = (kind, path) =>
            {
                if (kind == FaultOperationKind.Flush && path.StartsWith(prefix, StringComparison.Ordinal))
                {
                    hold.Block();
                }
            };
            return hold;
        }

        /// <summary>The index at which the leader appended <paramref name="command"/> (from the appends it sent).</summary>
        public ulong IndexOf(ulong leader, string command)
        {
            var bytes = Encoding.UTF8.GetBytes(command);
            foreach (var m in _sent[leader].Sent)
            {
                foreach (var e in m.Entries.Span)
                {
                    if (m.Type == MessageType.Append && e.Data.Span.EndsWith(bytes))
                    {
                        return e.Index;
                    }
                }
            }

            Assert.Fail($"node {leader} sent no append carrying '{command}'");
            return 0;
        }

        /// <summary>The highest index <paramref name="id"/> has acknowledged (accepted appends) so far.</summary>
        public ulong AcknowledgedUpTo(ulong id) =>
            _sent[id].Sent.Where(m => m.Type == MessageType.AppendResponse && !m.Reject).Select(m => m.Index).DefaultIfEmpty(0UL).Max();

        public Task WaitUntilAcknowledgedAsync(ulong id, ulong index) =>
            _sent[id].WaitForAsync(m => m.Type == MessageType.AppendResponse && !m.Reject && m.Index >= index);

        public async ValueTask DisposeAsync()
        {
            Cluster.Disk.BeforeEntering = null;
            await Cluster.DisposeAsync();
        }
    }

    /// <summary>Holds the threads that flush a node's log until <see cref="Release"/> (or disposal).</summary>
    private sealed class FlushHold : IDisposable
    {
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes when a flush of the node's log has started (and is being held).</summary>
        public Task Entered => _entered.Task;

        public void Block()
        {
            _entered.TrySetResult();
            _released.Task.WaitOrFail("the test releasing a held flush");
        }

        public void Release() => _released.TrySetResult();

        public void Dispose() => Release();
    }

    /// <summary>Forwards to a node's transport and remembers every message the node sent.</summary>
    private sealed class RecordingTransport(IRaftTransport inner) : IRaftTransport
    {
        private readonly Lock _lock = new();
        private readonly List<Message> _sent = [];
        private readonly List<(Func<Message, bool> Match, TaskCompletionSource Signal)> _waiters = [];

        public IReadOnlyList<Message> Sent
        {
            get
            {
                lock (_lock)
                {
                    return [.. _sent];
                }
            }
        }

        public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) => inner.Bind(localId, receiver);

        public void Send(Message message)
        {
            List<TaskCompletionSource> due;
            lock (_lock)
            {
                _sent.Add(message);
                due = _waiters.Where(w => w.Match(message)).Select(w => w.Signal).ToList();
                _waiters.RemoveAll(w => w.Match(message));
            }

            due.ForEach(s => s.TrySetResult());
            inner.Send(message);
        }

        public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
            inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);

        public Task WaitForAsync(Func<Message, bool> match)
        {
            lock (_lock)
            {
                if (_sent.Any(match))
                {
                    return Task.CompletedTask;
                }

                var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add((match, signal));
                return signal.Task.WaitAsync(Waits.Limit);
            }
        }
    }
}
