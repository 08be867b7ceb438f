using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// The instruments of the <c>EmbeddedRaft.Storage</c> meter that a <see cref="DurableRaftLog"/>
/// records, each measurement tagged <c>node.id</c> when <see cref="DurableRaftLogOptions.MetricsNodeId"/>
/// is set. One static meter for the process, as System.Diagnostics.Metrics intends: listeners
/// subscribe by name and tell logs apart by tag. Thread-safe.
/// </summary>
internal sealed class StorageMetrics
{
    private static readonly Meter s_meter = new(DurableRaftLog.MeterName);

    private static readonly Histogram<double> s_fsyncDuration = s_meter.CreateHistogram<double>(
        "embeddedraft.storage.fsync.duration", "ms", "Duration of each flush (fdatasync) of the Raft log's write-ahead log.");

    private static readonly Counter<long> s_walBytes = s_meter.CreateCounter<long>(
        "embeddedraft.storage.wal.bytes", "By", "Record payload bytes appended to the Raft log's write-ahead log.");

    private static readonly Counter<long> s_snapshots = s_meter.CreateCounter<long>(
        "embeddedraft.storage.snapshot.count", "{snapshot}", "Snapshots saved durably by the Raft log.");

    private static readonly Counter<long> s_snapshotBytes = s_meter.CreateCounter<long>(
        "embeddedraft.storage.snapshot.bytes", "By", "Bytes of snapshot files saved by the Raft log.");

    private static readonly Counter<long> s_entriesReadBack = s_meter.CreateCounter<long>(
        "embeddedraft.storage.entries.read_back", "{entry}", "Entries read back from the Raft log's write-ahead log because they were no longer held in memory (DurableRaftLogOptions.CachedEntryBytes).");

    private readonly TagList _tags;

    public StorageMetrics(ulong nodeId)
    {
        if (nodeId != 0)
        {
            _tags.Add("node.id", (long)nodeId);
        }
    }

    public void RecordFsync(TimeSpan duration) => s_fsyncDuration.Record(duration.TotalMilliseconds, _tags);

    public void RecordWalBytes(long bytes) => s_walBytes.Add(bytes, _tags);

    public void RecordEntriesReadBack(long entries) => s_entriesReadBack.Add(entries, _tags);

    public void RecordSnapshot(long bytes)
    {
        s_snapshots.Add(1, _tags);
        s_snapshotBytes.Add(bytes, _tags);
    }
}
