using System.Diagnostics.Metrics;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The node's instruments on the meter <see cref="MeterName"/>, every measurement tagged
/// <c>node.id</c>: proposals, committed entries, applied index, entries per Ready, reads per read-index round, leader changes,
/// snapshots. One meter per node, disposed with it (so its instruments disappear from listeners).
/// </summary>
internal sealed class RaftNodeMetrics : IDisposable
{
    public const string MeterName = "EmbeddedRaft.Consensus";
    public const string NodeIdTag = "node.id";

    private readonly Meter _meter;
    private readonly KeyValuePair<string, object?> _node;
    private readonly Counter<long> _proposals;
    private readonly Counter<long> _proposalsFailed;
    private readonly Counter<long> _committedEntries;
    private readonly Histogram<long> _entriesPerReady;
    private readonly Histogram<long> _readersPerRound;
    private readonly Counter<long> _leaderChanges;
    private readonly Counter<long> _snapshots;

    public RaftNodeMetrics(ulong nodeId, Func<ulong> appliedIndex)
    {
        _node = new(NodeIdTag, (long)nodeId);
        _meter = new Meter(new MeterOptions(MeterName) { Tags = [_node] });
        _proposals = _meter.CreateCounter<long>("embeddedraft.consensus.proposals", "{proposal}", "Commands handed to the Raft core (one ProposeBatch carries many).");
        _proposalsFailed = _meter.CreateCounter<long>("embeddedraft.consensus.proposals.failed", "{proposal}", "Proposals that failed: refused, no leader, timed out, overwritten, node stopped.");
        _committedEntries = _meter.CreateCounter<long>("embeddedraft.consensus.committed_entries", "{entry}", "Committed entries handed to the apply pipeline.");
        _entriesPerReady = _meter.CreateHistogram<long>("embeddedraft.consensus.ready.entries", "{entry}", "Entries persisted per Ready (one WAL write each).");
        _readersPerRound = _meter.CreateHistogram<long>("embeddedraft.consensus.read_index.readers", "{read}", "ReadIndexAsync callers answered by one read-index round (concurrent linearizable reads share rounds).");
        _leaderChanges = _meter.CreateCounter<long>("embeddedraft.consensus.leader_changes", "{change}", "Changes of the leader this node knows (including to none).");
        _snapshots = _meter.CreateCounter<long>("embeddedraft.consensus.snapshots", "{snapshot}", "Snapshots taken by policy, sent to followers and restored (tag kind).");
        var node = _node;
        _meter.CreateObservableGauge("embeddedraft.consensus.applied_index", () => new Measurement<long>((long)appliedIndex(), node), "{index}", "The last log index applied to the state machine.");
    }

    public void Proposed(int count) => _proposals.Add(count, _node);

    public void ProposalFailed() => _proposalsFailed.Add(1, _node);

    public void Committed(int count) => _committedEntries.Add(count, _node);

    public void ReadyPersisted(int entries) => _entriesPerReady.Record(entries, _node);

    public void ReadRoundStarted(int readers) => _readersPerRound.Record(readers, _node);

    public void LeaderChanged() => _leaderChanges.Add(1, _node);

    public void Snapshot(string kind) => _snapshots.Add(1, _node, new KeyValuePair<string, object?>("kind", kind));

    public void Dispose() => _meter.Dispose();
}
