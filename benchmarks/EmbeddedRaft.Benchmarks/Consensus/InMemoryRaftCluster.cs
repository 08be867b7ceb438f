using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// Three <see cref="RawNode"/>s over <see cref="MemoryStorage"/> joined by an in-memory network
/// with no IO: the host loop persists each Ready to memory, "applies" committed entries by
/// counting them, and delivers messages by calling <see cref="RawNode.Step"/> directly.
/// </summary>
internal sealed class InMemoryRaftCluster
{
    private readonly RawNode[] _nodes;
    private readonly MemoryStorage[] _storages;
    private readonly ulong[] _applied;
    private List<Message> _inFlight = new(64);
    private List<Message> _delivering = new(64);

    public InMemoryRaftCluster(int size)
    {
        var ids = Enumerable.Range(1, size).Select(i => (ulong)i).ToArray();
        _nodes = new RawNode[size];
        _storages = new MemoryStorage[size];
        _applied = new ulong[size];
        for (var i = 0; i < size; i++)
        {
            _storages[i] = MemoryStorage.WithVoters(ids);
            _nodes[i] = new RawNode(
                new RaftOptions(ids[i])
                {
                    ElectionTimeoutTicks = 10,
                    HeartbeatTimeoutTicks = 1,
                    MaxSizePerMessageBytes = 1024 * 1024,
                    MaxInflightMessages = 256,
                    RandomSeed = ids[i], // explicit: runs of the benchmark are comparable
                },
                _storages[i]);
        }

        _nodes[0].Campaign();
        Pump();
        if (_nodes[0].SoftState.Role != StateRole.Leader)
        {
            throw new InvalidOperationException("Node 1 did not become leader.");
        }
    }

    public RawNode Leader => _nodes[0];

    /// <summary>Entries applied on the node that applied the fewest.</summary>
    public ulong MinApplied => _applied.Min();

    /// <summary>Handles Readies and delivers messages until the cluster is quiet.</summary>
    public void Pump()
    {
        while (true)
        {
            var busy = false;
            for (var i = 0; i < _nodes.Length; i++)
            {
                busy |= HandleReady(i);
            }

            if (_inFlight.Count == 0)
            {
                if (!busy)
                {
                    return;
                }

                continue;
            }

            (_inFlight, _delivering) = (_delivering, _inFlight);
            foreach (var m in _delivering)
            {
                _nodes[(int)m.To - 1].Step(m);
            }

            _delivering.Clear();
        }
    }

    private bool HandleReady(int i)
    {
        var node = _nodes[i];
        if (!node.HasReady())
        {
            return false;
        }

        var rd = node.GetReady();
        _inFlight.AddRange(rd.Messages);
        var storage = _storages[i];
        if (rd.Snapshot is { } snapshot)
        {
            storage.ApplySnapshot(snapshot);
        }

        storage.Append(rd.Entries.Span);
        if (rd.HardState is { } hardState)
        {
            storage.SetHardState(hardState);
        }

        _inFlight.AddRange(rd.MessagesAfterPersist);
        if (!rd.CommittedEntries.IsEmpty)
        {
            _applied[i] = rd.CommittedEntries.Span[^1].Index;
        }

        node.Advance();
        return true;
    }

    /// <summary>Discards applied entries from every storage, as a host's snapshot policy would.</summary>
    public void Compact()
    {
        for (var i = 0; i < _nodes.Length; i++)
        {
            var storage = _storages[i];
            var index = _applied[i];
            if (index > storage.FirstIndex())
            {
                storage.CreateSnapshot(index, null);
                storage.Compact(index);
            }
        }
    }
}
