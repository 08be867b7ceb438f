using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A three-node <see cref="HostCluster"/> for the write pipeline's tests: each node on a
/// fault-injecting disk of its own (so one node's flushes can be held, failed, or lost in a crash
/// without touching the others'), a transport that records what each node sends, and one clock
/// whose ticks a test can stop (<see cref="StopTicksAsync"/>).
/// </summary>
internal sealed class PipelineCluster : IAsyncDisposable
{
    private static readonly ulong[] s_voters = [1, 2, 3];
    private readonly Dictionary<ulong, RecordingTransport> _sent = [];
    private readonly Dictionary<ulong, FaultInjectingFileSystem> _disks = [];
    private readonly StoppableTicks _ticks;

    private PipelineCluster(HostCluster cluster, StoppableTicks ticks) => (Cluster, _ticks) = (cluster, ticks);

    public HostCluster Cluster { get; }

    public static async Task<PipelineCluster> StartAsync(int seed, int readiesInFlight)
    {
        var ticks = new StoppableTicks();
        var run = new PipelineCluster(new HostCluster(seed, o => o with { MaxReadiesInFlight = readiesInFlight, TimeProvider = ticks }), ticks);
        foreach (var id in s_voters)
        {
            run._disks[id] = new FaultInjectingFileSystem((seed * 10) + (int)id);
            await run.StartNodeAsync(id, new RecordingStateMachine());
        }

        await run.Cluster.WaitForLeaderAsync();

        // Settle: a first proposal applied everywhere, so that nothing else is being written.
        var leader = run.Cluster.LeaderId();
        await run.Cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("settle")).AsTask().WaitAsync(Waits.Limit);
        await run.Cluster.WaitForAllAppliedAsync(run.Cluster.Machines[leader].AppliedIndex);
        return run;
    }

    public FaultInjectingFileSystem Disk(ulong id) => _disks[id];

    public RecordingTransport Sent(ulong id) => _sent[id];

    /// <summary>(Re)starts node <paramref name="id"/> from its disk with <paramref name="machine"/>.</summary>
    public async Task StartNodeAsync(ulong id, RecordingStateMachine machine)
    {
        var transport = new RecordingTransport(Cluster.Network.CreateTransport(id));
        _sent[id] = transport;
        var options = Cluster.Options(id, s_voters) with { FileSystem = _disks[id] };
        Cluster.Nodes[id] = await RaftNode<long>.StartAsync(options, machine, transport);
        Cluster.Machines[id] = machine;
    }

    /// <summary>
    /// The machine under node <paramref name="id"/> loses power: its disk keeps, drops or tears every
    /// write not yet flushed (from its seed), the node object is disposed, and the disk comes back
    /// healed (no fault switches).
    /// </summary>
    public async Task CrashAsync(ulong id)
    {
        var disk = _disks[id];
        disk.Crash();
        await Cluster.StopNodeAsync(id);
        disk.BeforeEntering = null;
        disk.FailWhen = null;
        disk.Restart();
    }

    /// <summary>Opens node <paramref name="id"/>'s log (the node must be stopped) and returns the command of every entry it holds, by index.</summary>
    public async Task<SortedDictionary<ulong, string>> ReadLogAsync(ulong id)
    {
        var commands = new SortedDictionary<ulong, string>();
        await using var log = await DurableRaftLog.OpenAsync(_disks[id], HostCluster.DataDirectory(id));
        for (var index = log.FirstIndex(); index <= log.LastIndex(); index++)
        {
            var entry = log.Entries(index, index + 1, ulong.MaxValue).Span[0];
            commands[index] = entry.Type == EntryType.Normal && entry.Data.Length >= 17 ? Encoding.UTF8.GetString(entry.Data.Span[17..]) : string.Empty;
        }

        return commands;
    }

    /// <summary>
    /// Stops every node's ticks until the returned object is disposed (<see cref="StoppableTicks"/>):
    /// no heartbeats, elections or timeouts meanwhile, only what the test's own proposals cause.
    /// Returns once every node has stepped past any tick posted before the stop (a read index on
    /// each, which takes a loop turn on it and on the leader).
    /// </summary>
    public async Task<IDisposable> StopTicksAsync()
    {
        var stopped = _ticks.Stop();
        foreach (var node in Cluster.Nodes.Values)
        {
            await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
        }

        return stopped;
    }

    /// <summary>From now on, every flush of <paramref name="id"/>'s write-ahead log blocks until released.</summary>
    public FlushHold HoldFlushesOf(ulong id)
    {
        var hold = new FlushHold();
        var prefix = $"{HostCluster.DataDirectory(id)}/wal";
        _disks[id].BeforeEntering = (kind, path) =>
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

    /// <summary>Waits until the leader has sent an append carrying <paramref name="command"/>, and returns its index.</summary>
    public async Task<ulong> WaitForIndexOfAsync(ulong leader, string command)
    {
        var bytes = Encoding.UTF8.GetBytes(command);
        await _sent[leader].WaitForAsync(m => m.Type == MessageType.Append && m.Entries.ToArray().Any(e => e.Data.Span.EndsWith(bytes)));
        return IndexOf(leader, command);
    }

    /// <summary>The highest index <paramref name="id"/> has acknowledged (accepted appends) so far.</summary>
    public ulong AcknowledgedUpTo(ulong id) =>
        _sent[id].Sent.Where(m => m.Type == MessageType.AppendResponse && !m.Reject).Select(m => m.Index).DefaultIfEmpty(0UL).Max();

    /// <summary>How many accepting append responses <paramref name="id"/> has sent so far.</summary>
    public int AcknowledgementsSent(ulong id) =>
        _sent[id].Sent.Count(m => m.Type == MessageType.AppendResponse && !m.Reject);

    public Task WaitUntilAcknowledgedAsync(ulong id, ulong index) =>
        _sent[id].WaitForAsync(m => m.Type == MessageType.AppendResponse && !m.Reject && m.Index >= index);

    /// <summary>
    /// Waits until <paramref name="leader"/> has sent an append carrying a commit index of at least
    /// <paramref name="index"/>: its core has stepped acknowledgements that commit up to there (a
    /// leader tells its followers as soon as its commit index moves).
    /// </summary>
    public Task WaitUntilCommitSentAsync(ulong leader, ulong index) =>
        _sent[leader].WaitForAsync(m => m.Type == MessageType.Append && m.Commit >= index);

    public async ValueTask DisposeAsync()
    {
        foreach (var disk in _disks.Values)
        {
            disk.BeforeEntering = null;
        }

        await Cluster.DisposeAsync();
    }
}
