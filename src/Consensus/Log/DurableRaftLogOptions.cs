using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.Storage.Wal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// Settings of a <see cref="DurableRaftLog"/>. Each property checks its own range when set and
/// throws <see cref="ArgumentOutOfRangeException"/> (or <see cref="ArgumentNullException"/>) whose
/// <see cref="ArgumentException.ParamName"/> is the property's name; the rules of the write-ahead
/// log's and snapshotter's own options are checked by <see cref="DurableRaftLog.OpenAsync"/>.
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds from
/// Microsoft.Extensions.Configuration; vary it with
/// <c>DurableRaftLogOptions.Default with { CachedEntryBytes = ... }</c>. Thread-safe to share.
/// The <see cref="Logger"/> set here is used for the log's own events and, unless the nested
/// <see cref="Wal"/> and <see cref="Snapshots"/> options carry a logger of their own, for theirs too.
/// </remarks>
public sealed record DurableRaftLogOptions
{
    /// <summary>The default <see cref="CachedEntryBytes"/>: 1 MiB of the newest committed entries kept in memory.</summary>
    public const long DefaultCachedEntryBytes = 1024L * 1024;

    /// <summary>The default <see cref="UncommittedCacheCeilingBytes"/>: 64 MiB.</summary>
    internal const long DefaultUncommittedCacheCeilingBytes = 64L * 1024 * 1024;

    /// <summary>The default <see cref="RetainedEntries"/>: 5,000 entries kept below a snapshot for slow followers, as etcd's snapshotCatchUpEntries.</summary>
    public const ulong DefaultRetainedEntries = 5000;

    /// <summary>The default <see cref="SlowFsyncThreshold"/>: one second, as etcd's warning for a slow fdatasync.</summary>
    public static readonly TimeSpan DefaultSlowFsyncThreshold = TimeSpan.FromSeconds(1);

    /// <summary>Creates options with every default.</summary>
    public DurableRaftLogOptions()
    {
    }

    /// <summary>Every default.</summary>
    public static DurableRaftLogOptions Default { get; } = new();

    /// <summary>Options of the write-ahead log in <c>{directory}/wal</c>. Default <see cref="WalOptions.Default"/> (background writer threads; set <see cref="WalOptions.Threading"/> to <see cref="WalThreading.CallerThread"/> for a deterministic single-threaded host).</summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Wal").</exception>
    // A fresh instance, never the shared WalOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public WalOptions Wal
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Wal));
    } = new();

    /// <summary>Options of the snapshotter in <c>{directory}/snap</c>; its <see cref="SnapshotOptions.RetainCount"/> bounds how many snapshot files are kept and must be at least 2 (checked by <see cref="DurableRaftLog.OpenAsync"/>). Default <see cref="SnapshotOptions.Default"/>.</summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Snapshots").</exception>
    // A fresh instance, never the shared SnapshotOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public SnapshotOptions Snapshots
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Snapshots));
    } = new();

    /// <summary>
    /// How many bytes (by <see cref="Messages.Entry.EncodedSizeBytes"/>) of the newest entries stay
    /// in memory once they are committed (at or below the commit index of the hard state saved with
    /// <see cref="DurableRaftLog.SaveAsync"/>); older durable committed entries are dropped from
    /// memory and read back from the write-ahead log when <see cref="IRaftStorage.Entries"/> asks for
    /// them (a follower that fell behind). Entries not yet durable always stay; entries above the
    /// commit index (the ones read again soon: applied once committed, sent to followers) stay up to
    /// 64 MiB in all, or this limit when higher. The log always keeps an index to position map of
    /// every entry (about 32 bytes each). 0 keeps only entries not yet durable or not yet committed.
    /// Default <see cref="DefaultCachedEntryBytes"/> (1 MiB; 64 MiB before session 14: committed
    /// entries held that long outlive several collections, and under load nearly every entry's data
    /// reached gen2 only to die there, docs/benchmarks.md).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative (ParamName "CachedEntryBytes").</exception>
    public long CachedEntryBytes
    {
        get;
        init => field = OptionChecks.AtLeast(value, 0, nameof(CachedEntryBytes));
    } = DefaultCachedEntryBytes;

    /// <summary>
    /// For tests: how many bytes of durable entries above the commit index may stay in memory
    /// (<see cref="CachedEntryBytes"/> when higher). Default <see cref="DefaultUncommittedCacheCeilingBytes"/>.
    /// </summary>
    internal long UncommittedCacheCeilingBytes { get; init; } = DefaultUncommittedCacheCeilingBytes;

    /// <summary>
    /// How many entries at and below a snapshot's index <see cref="DurableRaftLog.CompactAsync"/>
    /// keeps, so that a follower slightly behind is sent entries rather than the whole snapshot.
    /// 0 compacts up to the snapshot index. Default <see cref="DefaultRetainedEntries"/>.
    /// </summary>
    public ulong RetainedEntries { get; init; } = DefaultRetainedEntries;

    /// <summary>
    /// A flush of the write-ahead log that takes longer than this is logged as a warning (etcd's
    /// "slow fdatasync"). From 0 (log every flush) to one hour. Default <see cref="DefaultSlowFsyncThreshold"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative or above one hour (ParamName "SlowFsyncThreshold").</exception>
    public TimeSpan SlowFsyncThreshold
    {
        get;
        init
        {
            if (value < TimeSpan.Zero || value > TimeSpan.FromHours(1))
            {
                throw new ArgumentOutOfRangeException(nameof(SlowFsyncThreshold), value, $"{nameof(SlowFsyncThreshold)} must be from 0 to one hour.");
            }

            field = value;
        }
    } = DefaultSlowFsyncThreshold;

    /// <summary>
    /// The value of the <c>node.id</c> tag on every measurement of the <c>EmbeddedRaft.Storage</c>
    /// meter this log records (fsync duration, WAL bytes, snapshot count and bytes), and a scope of
    /// its log messages. 0 (the default) records the measurements without the tag.
    /// </summary>
    public ulong MetricsNodeId { get; init; }

    /// <summary>The clock that times flushes (for <see cref="SlowFsyncThreshold"/> and the fsync duration histogram). Default <see cref="System.TimeProvider.System"/>.</summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "TimeProvider").</exception>
    public TimeProvider TimeProvider
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(TimeProvider));
    } = TimeProvider.System;

    /// <summary>
    /// Where the log reports what it repaired or set aside at open (a torn write-ahead-log tail cut,
    /// a damaged snapshot quarantined, an older snapshot used instead) and slow flushes, all as
    /// warnings. Default: nowhere (<see cref="NullLogger.Instance"/>); null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Logger").</exception>
    public ILogger Logger
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Logger));
    } = NullLogger.Instance;

    /// <summary>Checks the rules between options; called by <see cref="DurableRaftLog.OpenAsync"/>.</summary>
    /// <exception cref="ArgumentException"><see cref="Snapshots"/> keeps fewer than 2 snapshot files: saving the data of the next snapshot would delete the installed one before the next marker names its successor, and a crash in between would leave the log without its snapshot.</exception>
    internal void Validate()
    {
        if (Snapshots.RetainCount < 2)
        {
            throw new ArgumentException($"{nameof(Snapshots)}.{nameof(SnapshotOptions.RetainCount)} is {Snapshots.RetainCount}; the Raft log needs at least 2, so that saving the next snapshot's data never deletes the installed one before its marker is replaced.", nameof(Snapshots));
        }
    }
}
