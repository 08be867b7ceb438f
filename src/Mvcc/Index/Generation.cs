namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// One ended life of a key, as etcd's <c>generation</c>: from the put that created it to the delete
/// that ended it (whose tombstone is its last revision). A key's live or last generation is held
/// inline in its <see cref="KeyHistory"/>; only generations a delete ended get one of these.
/// </summary>
/// <remarks>
/// Invariant: <see cref="Revisions"/> ascend and are never empty. <see cref="Version"/> counts every
/// put of the generation, including those compaction has pruned from <see cref="Revisions"/>, so
/// the version of <c>Revisions[i]</c> is <c>Version - (Revisions.Count - 1 - i)</c> (a tombstone
/// counts as one more, as in etcd, and is never read as a version).
/// </remarks>
internal sealed class Generation(Revision created, long version, RevisionList revisions)
{
    public long Version { get; } = version;

    public Revision Created { get; } = created;

    /// <summary>A field, so compaction can change it in place (see <see cref="RevisionList"/>).</summary>
    public RevisionList Revisions = revisions;
}
