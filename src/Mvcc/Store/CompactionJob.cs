using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// A compaction in progress, done in steps by the writer thread between write batches (etcd's
/// <c>treeIndex.Compact</c> then <c>scheduleCompaction</c>): first the index, a slice of keys per
/// step under the index lock, collecting the revisions to keep; then the B+tree, deleting up to
/// <see cref="MvccStoreOptions.CompactionBatchLimit"/> revisions at or below the compaction point
/// per commit, the last commit also writing the finished mark.
/// </summary>
/// <remarks>
/// Resumable: the scheduled mark is durable before the first step; after a crash the open finds
/// scheduled &gt; finished and starts a new job, which recomputes what to keep from the rebuilt index
/// (revisions an earlier run already deleted are simply not found again).
/// </remarks>
internal sealed class CompactionJob(long revision)
{
    public long Revision { get; } = revision;

    /// <summary>The revisions at or below <see cref="Revision"/> that survive (etcd's "available"/"keep").</summary>
    public HashSet<Revision> Keep { get; } = [];

    /// <summary>Where the next index step starts (a key), or null when the index part is done.</summary>
    public byte[]? NextIndexKey { get; set; } = [];

    /// <summary>Where the next B+tree step starts (a revision key).</summary>
    public byte[] NextStoredKey { get; set; } = RevisionKey.Start(0);

    /// <summary>Callers of a physical compaction, completed when the job finishes.</summary>
    public List<WriteOp> Waiters { get; } = [];
}
