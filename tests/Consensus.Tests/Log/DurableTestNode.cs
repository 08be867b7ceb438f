using System.Buffers.Binary;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// A <see cref="RawNode"/> over a <see cref="DurableRaftLog"/> on its own fault-injecting disk,
/// driven by hand through the Ready contract: install a leader's snapshot, persist (synced when the
/// Ready must sync), send the after-persist messages, apply, take a snapshot by policy and compact.
/// The state machine is the list of applied commands; its snapshot is that list, serialised.
/// </summary>
internal sealed class DurableTestNode
{
    private readonly DurableRaftLogOptions _options;
    private readonly ulong _snapshotEvery;

    private DurableTestNode(ulong id, FaultInjectingFileSystem disk, DurableRaftLogOptions options, ulong snapshotEvery)
    {
        Id = id;
        Disk = disk;
        _options = options;
        _snapshotEvery = snapshotEvery;
    }

    public ulong Id { get; }

    public FaultInjectingFileSystem Disk { get; }

    public DurableRaftLog Log { get; private set; } = null!;

    public RawNode Node { get; private set; } = null!;

    /// <summary>The state machine: every command applied, in order.</summary>
    public List<byte[]> Applied { get; private set; } = [];

    public ulong AppliedIndex { get; private set; }

    public ConfState Config { get; private set; } = ConfState.Empty;

    public bool IsUp { get; private set; }

    public static async Task<DurableTestNode> StartAsync(ulong id, ulong[] voters, FaultInjectingFileSystem disk, DurableRaftLogOptions options, ulong snapshotEvery)
    {
        var node = new DurableTestNode(id, disk, options, snapshotEvery);
        node.Log = await DurableRaftLog.OpenAsync(disk, LogTestKit.LogDirectory, options);
        await node.Log.BootstrapAsync(new ConfState(voters));
        await node.CreateRawNodeAsync(keepStateMachine: false);
        return node;
    }

    /// <summary>Stops cleanly (the log's writes flushed) or by a crash of the disk (unsynced writes dropped or torn).</summary>
    public async Task StopAsync(bool crash)
    {
        IsUp = false;
        if (crash)
        {
            Disk.Crash();
            try
            {
                await Log.DisposeAsync();
            }
            catch (SimulatedCrashException)
            {
            }

            Disk.Restart();
        }
        else
        {
            await Log.DisposeAsync();
        }
    }

    /// <summary>
    /// Restarts from the disk. With <paramref name="keepStateMachine"/> the state machine survived
    /// (a durable one: the log is told its applied index); without, it restarts empty and is
    /// restored from the newest snapshot, then the committed entries after it are applied again.
    /// </summary>
    public async Task RestartAsync(bool keepStateMachine)
    {
        Log = await DurableRaftLog.OpenAsync(Disk, LogTestKit.LogDirectory, _options);
        await CreateRawNodeAsync(keepStateMachine);
    }

    /// <summary>Handles every Ready; returns the messages to deliver.</summary>
    public async Task<List<Message>> HandleReadiesAsync()
    {
        var outgoing = new List<Message>();
        for (int guard = 0; IsUp && Node.HasReady(); guard++)
        {
            if (guard > 1000)
            {
                throw new InvalidOperationException($"Node {Id} never stops producing Readies.");
            }

            var ready = Node.GetReady();
            outgoing.AddRange(ready.Messages);
            if (ready.Snapshot is { } snapshot)
            {
                await Log.ApplySnapshotAsync(snapshot);
                await RestoreAsync(snapshot);
            }

            await Log.SaveAsync(ready.HardState, ready.Entries, ready.MustSync);
            outgoing.AddRange(ready.MessagesAfterPersist);
            foreach (var entry in ready.CommittedEntries.ToArray())
            {
                if (entry.Type == EntryType.ConfChange)
                {
                    Config = Node.ApplyConfChange(MessageCodec.DecodeConfChange(entry.Data.Span));
                }
                else if (!entry.Data.IsEmpty)
                {
                    Applied.Add(entry.Data.ToArray());
                }

                AppliedIndex = entry.Index;
            }

            Node.Advance();
            await SnapshotByPolicyAsync();
        }

        return outgoing;
    }

    /// <summary>Delivers a message; a snapshot's data is first streamed from the sender's log into this node's.</summary>
    public async Task DeliverAsync(Message message, DurableTestNode sender)
    {
        if (message.Type == MessageType.Snapshot && message.Snapshot is { } metadata)
        {
            await Log.SaveSnapshotDataAsync(metadata, async (destination, token) =>
            {
                await using var source = await sender.Log.OpenSnapshotDataAsync(metadata.Index, token);
                await source.CopyToAsync(destination, token);
            });
        }

        Node.Step(message);
    }

    private async Task CreateRawNodeAsync(bool keepStateMachine)
    {
        var options = TestNode.DefaultOptions(Id);
        var snapshot = Log.Snapshot();
        if (keepStateMachine && AppliedIndex > snapshot.Index)
        {
            Log.SetAppliedIndex(AppliedIndex);
            options = options with { AppliedIndex = AppliedIndex };
        }
        else
        {
            Applied = [];
            AppliedIndex = snapshot.Index;
            if (snapshot.Index > 0)
            {
                await RestoreAsync(snapshot);
            }
        }

        Config = Log.InitialState().ConfState;
        Node = new RawNode(options, Log);
        IsUp = true;
    }

    private async Task RestoreAsync(SnapshotMetadata snapshot)
    {
        await using var data = await Log.OpenSnapshotDataAsync(snapshot.Index);
        using var copy = new MemoryStream();
        await data.CopyToAsync(copy);
        Applied = Deserialize(copy.ToArray());
        AppliedIndex = snapshot.Index;
        Config = snapshot.ConfState;
    }

    private async Task SnapshotByPolicyAsync()
    {
        var newest = Log.Snapshot().Index;
        if (_snapshotEvery == 0 || AppliedIndex < newest + _snapshotEvery)
        {
            return;
        }

        var metadata = new SnapshotMetadata(AppliedIndex, Log.Term(AppliedIndex), Config);
        var data = Serialize(Applied);
        await Log.SaveSnapshotDataAsync(metadata, (stream, token) => stream.WriteAsync(data, token));
        await Log.CompactAsync(metadata);
    }

    private static byte[] Serialize(List<byte[]> commands)
    {
        using var buffer = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var command in commands)
        {
            BinaryPrimitives.WriteInt32LittleEndian(length, command.Length);
            buffer.Write(length);
            buffer.Write(command);
        }

        return buffer.ToArray();
    }

    private static List<byte[]> Deserialize(byte[] data)
    {
        var commands = new List<byte[]>();
        for (int offset = 0; offset < data.Length;)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(offset));
            commands.Add(data.AsSpan(offset + 4, length).ToArray());
            offset += 4 + length;
        }

        return commands;
    }
}
