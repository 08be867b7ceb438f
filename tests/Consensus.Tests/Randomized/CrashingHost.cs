using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Randomized;

/// <summary>
/// A host loop for <see cref="ClusterSimulation"/> that, unlike <see cref="TestNode.ReadMessages"/>,
/// behaves like a real process over a real disk: it sends <see cref="Ready.Messages"/> before
/// persisting, writes go to a page cache and become durable only on an fsync (which the host
/// does when <see cref="Ready.MustSync"/> says so, and the OS sometimes does on its own), and
/// the node may crash at any point of handling a Ready. A restart rebuilds the storage from the
/// durable writes only, and sometimes keeps the application's state (and so its applied index).
/// </summary>
/// <remarks>
/// The durable image is the list of synced writes, replayed into a fresh storage on restart
/// (a write-ahead log). Writes not synced when the node crashes are lost.
/// </remarks>
internal sealed class CrashingHost
{
    private const int CrashOneIn = 300;

    private readonly Random _random;
    private readonly Func<ulong, MemoryStorage> _freshStorage;
    private readonly Dictionary<ulong, List<Action<MemoryStorage>>> _synced = [];
    private readonly Dictionary<ulong, List<Action<MemoryStorage>>> _buffered = [];
    private readonly Dictionary<ulong, Queue<Ready>> _pipelines = [];
    private bool _crashesEnabled = true;

    /// <param name="random">The simulation's seeded source of every choice.</param>
    /// <param name="freshStorage">What a node's disk held before the node first started (the
    /// bootstrap configuration for initial members, nothing for nodes added later).</param>
    public CrashingHost(Random random, Func<ulong, MemoryStorage> freshStorage)
    {
        _random = random;
        _freshStorage = freshStorage;
    }

    /// <summary>Nodes crashed while handling a Ready.</summary>
    public int CrashesMidReady { get; private set; }

    /// <summary>Crashes (or restarts) that lost buffered, unsynced writes.</summary>
    public int LostWrites { get; private set; }

    /// <summary>Restarts that kept the application's applied index.</summary>
    public int RestartsKeepingApplied { get; private set; }

    public void DisableCrashes() => _crashesEnabled = false;

    /// <summary>
    /// Handles the node's Readies until it has none, adding what it sends to
    /// <paramref name="network"/>. Returns true if the node crashed doing so.
    /// </summary>
    public bool ReadMessages(TestNode node, List<Message> network, bool mayCrash)
    {
        mayCrash &= _crashesEnabled;
        if (node.PipelineDepth > 1)
        {
            return ReadMessagesPipelined(node, network, mayCrash);
        }

        for (var guard = 0; node.Node.HasReady(); guard++)
        {
            if (guard > 10_000)
            {
                throw new InvalidOperationException("Node never stops producing Readies.");
            }

            var rd = node.Node.GetReady();

            // Raft thesis §10.2.1: these may leave before the Ready is durable.
            network.AddRange(rd.Messages);
            if (mayCrash && Crash())
            {
                return true;
            }

            Write(node, rd);
            if (rd.MustSync || _random.Next(4) == 0)
            {
                Sync(node.Id);
            }

            if (mayCrash && Crash())
            {
                return true;
            }

            network.AddRange(rd.MessagesAfterPersist);
            node.Apply(rd);
            if (mayCrash && Crash())
            {
                return true;
            }

            node.Node.Advance();
        }

        return false;
    }

    /// <summary>Readies written while earlier ones were still being synced (<see cref="TestNode.PipelineDepth"/> above 1).</summary>
    public int PipelinedReadies { get; private set; }

    /// <summary>
    /// An asynchronous-writes host (RaftNode): takes and writes the next Readies while earlier ones
    /// wait for their fsync, and, when an fsync completes (it covers every write before it), sends
    /// the acknowledgements and votes of a prefix of the written Readies in order, applies and
    /// advances them. It crashes at any point; what was not synced is lost. Between calls Readies
    /// stay written but not durable while the node keeps stepping (in the fault phase).
    /// </summary>
    private bool ReadMessagesPipelined(TestNode node, List<Message> network, bool mayCrash)
    {
        var pipeline = Pipeline(node.Id);
        for (var guard = 0; ; guard++)
        {
            if (guard > 10_000)
            {
                throw new InvalidOperationException("Node never stops producing Readies.");
            }

            var canTake = node.Node.HasReady();
            if (!canTake && pipeline.Count == 0)
            {
                return false;
            }

            if (_crashesEnabled && pipeline.Count > 0 && _random.Next(4) == 0)
            {
                // Written, not yet durable: the node goes on stepping and ticking meanwhile.
                return false;
            }

            if (canTake && (pipeline.Count == 0 || _random.Next(2) == 0))
            {
                var rd = node.Node.GetReady();
                if (pipeline.Count > 0)
                {
                    PipelinedReadies++;
                }

                network.AddRange(rd.Messages);
                if (mayCrash && Crash())
                {
                    return true;
                }

                Write(node, rd);
                pipeline.Enqueue(rd);
                if (mayCrash && Crash())
                {
                    return true;
                }

                continue;
            }

            // An fsync completes: it covers every write so far (RaftNode syncs when any Ready of the
            // batch must be synced; the OS sometimes writes back on its own).
            if (pipeline.Any(r => r.MustSync) || _random.Next(4) == 0)
            {
                Sync(node.Id);
            }

            for (var finish = 1 + _random.Next(pipeline.Count); finish > 0; finish--)
            {
                var done = pipeline.Dequeue();
                network.AddRange(done.MessagesAfterPersist);
                node.Apply(done);
                if (mayCrash && Crash())
                {
                    return true;
                }

                node.Node.Advance();
            }
        }
    }

    /// <summary>The application compacted the node's log: the snapshot is saved and synced.</summary>
    public void Compacted(TestNode node)
    {
        var snapshot = node.Storage.Snapshot();
        Sync(node.Id);
        Synced(node.Id).Add(storage =>
        {
            storage.CreateSnapshot(snapshot.Index, snapshot.ConfState);
            storage.Compact(snapshot.Index);
        });
    }

    /// <summary>Restarts the node from its durable writes; buffered writes are lost.</summary>
    public void Restart(TestNode node)
    {
        Pipeline(node.Id).Clear();
        var buffered = Buffered(node.Id);
        if (buffered.Count > 0)
        {
            LostWrites++;
            buffered.Clear();
        }

        var storage = _freshStorage(node.Id);
        foreach (var write in Synced(node.Id))
        {
            write(storage);
        }

        var keepApplied = _random.Next(2) == 0;
        if (keepApplied)
        {
            RestartsKeepingApplied++;
        }

        node.Restart(keepApplied, storage);
    }

    private bool Crash()
    {
        if (_random.Next(CrashOneIn) != 0)
        {
            return false;
        }

        CrashesMidReady++;
        return true;
    }

    private void Write(TestNode node, Ready rd)
    {
        var buffered = Buffered(node.Id);
        if (rd.Snapshot is { } snapshot)
        {
            node.Storage.ApplySnapshot(snapshot);
            buffered.Add(storage => storage.ApplySnapshot(snapshot));
        }

        if (!rd.Entries.IsEmpty)
        {
            var entries = rd.Entries;
            node.Storage.Append(entries.Span);
            buffered.Add(storage => storage.Append(entries.Span));
        }

        if (rd.HardState is { } hs)
        {
            node.Storage.SetHardState(hs);
            buffered.Add(storage => storage.SetHardState(hs));
        }
    }

    private void Sync(ulong id)
    {
        var buffered = Buffered(id);
        Synced(id).AddRange(buffered);
        buffered.Clear();
    }

    // Nodes join the cluster over time (membership changes), so their write logs start on first use.
    private List<Action<MemoryStorage>> Synced(ulong id) => GetOrAdd(_synced, id);

    private List<Action<MemoryStorage>> Buffered(ulong id) => GetOrAdd(_buffered, id);

    private Queue<Ready> Pipeline(ulong id)
    {
        if (!_pipelines.TryGetValue(id, out var queue))
        {
            queue = new Queue<Ready>();
            _pipelines.Add(id, queue);
        }

        return queue;
    }

    private static List<Action<MemoryStorage>> GetOrAdd(Dictionary<ulong, List<Action<MemoryStorage>>> writes, ulong id)
    {
        if (!writes.TryGetValue(id, out var list))
        {
            list = [];
            writes.Add(id, list);
        }

        return list;
    }
}
