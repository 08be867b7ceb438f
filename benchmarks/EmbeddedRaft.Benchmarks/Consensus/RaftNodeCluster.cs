using System.Diagnostics.Metrics;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// Three <see cref="RaftNode{TResult}"/>s in this process over an <see cref="InProcessNetwork"/>
/// (perfect links), each with its own data directory (WAL + snapshots) on the real disk and a
/// counting state machine; the load goes to the leader's <see cref="RaftNode{TResult}.ProposeAsync"/>,
/// which returns once the command is applied on the leader (after a synced WAL write on a quorum).
/// fsyncs are counted from the storage meter (<c>embeddedraft.storage.fsync.duration</c>, one
/// measurement per flush) over all three nodes.
/// </summary>
internal sealed class RaftNodeCluster : IClusterUnderLoad
{
    private readonly RaftNode<long>[] _nodes;
    private readonly CountingStateMachine[] _machines;
    private readonly InProcessNetwork _network;
    private readonly MeterListener _fsyncListener;
    private readonly long[] _fsyncs;
    private RaftNode<long> _leader;
    private CountingStateMachine _leaderMachine;
    private Transport.TcpTransportSet? _tcp;
    private bool _tls;
    private TimeSpan? _fixedFsync;
    private FlushTraceFileSystem? _trace;
    private string? _traceFile;
    private Transport.MessageShapeTransport[]? _shapes;

    private RaftNodeCluster(RaftNode<long>[] nodes, CountingStateMachine[] machines, InProcessNetwork network, MeterListener fsyncListener, long[] fsyncs)
    {
        _fsyncs = fsyncs;
        _nodes = nodes;
        _machines = machines;
        _network = network;
        _fsyncListener = fsyncListener;
        _leader = nodes[0];
        _leaderMachine = machines[0];
    }

    public string Name => (_fixedFsync is { } f ? FormattableString.Invariant($"[fsync = sleep {f.TotalMilliseconds} ms] ") : "") + (_tcp is null ? "EmbeddedRaft RaftNode (InProcessNetwork)" : _tls ? "EmbeddedRaft RaftNode (TcpTransport, mutual TLS, loopback)" : "EmbeddedRaft RaftNode (TcpTransport, loopback)");

    public long AppliedCommands => _leaderMachine.AppliedCommands;

    public long? Fsyncs => Interlocked.Read(ref _fsyncs[0]);

    // Kept in microseconds so that the meter's callback adds with one Interlocked call.
    public double? FsyncMilliseconds => Interlocked.Read(ref _fsyncs[1]) / 1000.0;

    public long? EntriesReadBack => Interlocked.Read(ref _fsyncs[2]);

    /// <param name="readiesInFlight">The nodes' <see cref="RaftNodeOptions.MaxReadiesInFlight"/> (null: the default), for A/B runs of the write pipeline.</param>
    /// <param name="tls">With <paramref name="tcp"/>: mutual TLS on every connection (<see cref="Transport.BenchmarkCertificates"/>).</param>
    /// <param name="fixedFsync">When set, every flush is a sleep of this long instead of an fdatasync (<see cref="FixedFsyncFileSystem"/>: a diagnostic).</param>
    /// <param name="snapshotEveryEntries">The nodes' <see cref="RaftNodeOptions.SnapshotEveryEntries"/> (null: the default), to see what snapshots by policy cost the row.</param>
    /// <param name="countShape">Each node's transport wrapped in a <see cref="Transport.MessageShapeTransport"/> (a diagnostic: what the nodes send and are handed).</param>
    /// <param name="logCacheBytes">The logs' <see cref="DurableRaftLogOptions.CachedEntryBytes"/> (null: the default).</param>
    /// <param name="retainedEntries">The logs' <see cref="DurableRaftLogOptions.RetainedEntries"/> (null: the default).</param>
    public static async Task<RaftNodeCluster> StartAsync(string rootDirectory, CancellationToken cancellationToken, bool tcp = false, int? readiesInFlight = null, bool tls = false, ulong? snapshotEveryEntries = null, TimeSpan? fixedFsync = null, bool countShape = false, long? logCacheBytes = null, ulong? retainedEntries = null)
    {
        var listener = new MeterListener();
        var fsyncs = new long[3]; // count, microseconds spent, entries read back
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == DurableRaftLog.MeterName && instrument.Name is "embeddedraft.storage.fsync.duration" or "embeddedraft.storage.entries.read_back")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, milliseconds, _, _) =>
        {
            Interlocked.Increment(ref fsyncs[0]);
            Interlocked.Add(ref fsyncs[1], (long)(milliseconds * 1000));
        });
        listener.SetMeasurementEventCallback<long>((_, entries, _, _) => Interlocked.Add(ref fsyncs[2], entries));
        listener.Start();

        var network = new InProcessNetwork();
        ulong[] voters = [1, 2, 3];
        var tcpTransports = tcp ? new Transport.TcpTransportSet(voters, tls ? Transport.BenchmarkCertificates.TlsOptions() : null) : null;
        var nodes = new RaftNode<long>[3];
        var machines = new CountingStateMachine[3];
        var shapes = countShape ? new Transport.MessageShapeTransport[3] : null;
        // CLUSTER_LOAD_FLUSH_TRACE=FILE: every flush, directory sync and rename recorded (a diagnostic).
        var traceFile = Environment.GetEnvironmentVariable("CLUSTER_LOAD_FLUSH_TRACE");
        var trace = string.IsNullOrEmpty(traceFile) || fixedFsync is not null ? null : new FlushTraceFileSystem(Path.GetFileName(rootDirectory));
        for (int i = 0; i < 3; i++)
        {
            machines[i] = new CountingStateMachine();
            var options = new RaftNodeOptions
            {
                NodeId = voters[i],
                InitialVoters = voters,
                DataDirectory = Path.Combine(rootDirectory, $"raftnode-{i + 1}"),
                TickInterval = TimeSpan.FromMilliseconds(10),
                Raft = EmbeddedRaft.Consensus.RaftOptions.Default with
                {
                    ElectionTimeoutTicks = 100,
                    HeartbeatTimeoutTicks = 10,
                    MaxInflightMessages = 1024,
                    // CLUSTER_LOAD_MAX_MESSAGE_BYTES=N: another append size limit (a diagnostic: a 1,024-entry wave of 1 KiB commands crosses 1 MiB and travels as two appends).
                    MaxSizePerMessageBytes = ulong.TryParse(Environment.GetEnvironmentVariable("CLUSTER_LOAD_MAX_MESSAGE_BYTES"), out var maxMessage) ? maxMessage : 1024 * 1024,
                    PreVote = true,
                    CheckQuorum = true,
                },
                MaxReadiesInFlight = readiesInFlight ?? RaftNodeOptions.DefaultMaxReadiesInFlight,
                SnapshotEveryEntries = snapshotEveryEntries ?? RaftNodeOptions.DefaultSnapshotEveryEntries,
                FileSystem = fixedFsync is { } flushTime ? new FixedFsyncFileSystem(flushTime) : trace,
                Log = logCacheBytes is null && retainedEntries is null
                    ? null
                    : DurableRaftLogOptions.Default with
                    {
                        CachedEntryBytes = logCacheBytes ?? DurableRaftLogOptions.DefaultCachedEntryBytes,
                        RetainedEntries = retainedEntries ?? DurableRaftLogOptions.DefaultRetainedEntries,
                    },
            };
            IRaftTransport transport = tcpTransports?[voters[i]] ?? network.CreateTransport(voters[i]);
            if (shapes is not null)
            {
                transport = shapes[i] = new Transport.MessageShapeTransport(transport);
            }

            nodes[i] = await RaftNode<long>.StartAsync(options, machines[i], transport, cancellationToken);
        }

        var cluster = new RaftNodeCluster(nodes, machines, network, listener, fsyncs) { _tcp = tcpTransports, _tls = tls && tcp, _fixedFsync = fixedFsync, _shapes = shapes, _trace = trace, _traceFile = traceFile };
        await cluster.FindLeaderAsync(cancellationToken);
        return cluster;
    }

    public async ValueTask ProposeAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken)
    {
        var leader = _leader;
        try
        {
            await leader.ProposeAsync(command, cancellationToken);
        }
        catch (Exception failure) when (failure is NoLeaderException or ProposalDroppedException)
        {
            // Leadership moved (a follower would forward, but not to a leader it does not know):
            // aim the next calls at the new leader; this one counts as failed.
            await FindLeaderAsync(cancellationToken);
            throw;
        }
    }

    public string? TransportSummary => _shapes is null ? _tcp?.Summary() : $"{_tcp?.Summary()}{(_tcp is null ? string.Empty : "; ")}{Transport.MessageShapeTransport.Describe(_shapes)}";

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        _network.Dispose();
        if (_tcp is not null)
        {
            await _tcp.DisposeAsync();
        }

        _fsyncListener.Dispose();
        _trace?.WriteTo(_traceFile!);
    }

    private async Task FindLeaderAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await foreach (var change in _nodes[0].LeaderChanges(timeout.Token))
        {
            if (change.LeaderId != 0)
            {
                int index = Array.FindIndex(_nodes, n => n.Id == change.LeaderId);
                _leader = _nodes[index];
                _leaderMachine = _machines[index];
                return;
            }
        }
    }
}
