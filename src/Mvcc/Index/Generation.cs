namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// One life of a key, as etcd's <c>generation</c>: from the put that created it to the delete that
/// ended it (whose tombstone is its last revision), or still going when it is the key's last generation.
/// </summary>
/// <remarks>
/// Invariant: <see cref="Revisions"/> ascend. <see cref="Version"/> counts every put of the
/// generation, including those compaction has pruned from <see cref="Revisions"/>, so the version
/// of <c>Revisions[i]</c> is <c>Version - (Revisions.Count - 1 - i)</c> (a tombstone counts as one
/// more, as in etcd, and is never read as a version).
/// </remarks>
internal sealed class Generation
{
    public long Version { get; set; }

    public Revision Created { get; set; }

    public List<Revision> Revisions { get; } = new(1);

    public bool IsEmpty => Revisions.Count == 0;

    /// <summary>
    /// Index of the last revision whose main is at most <paramref name="atMain"/>, or -1 (etcd's
    /// <c>walk</c> from the end).
    /// </summary>
    public int LastAtOrBelow(long atMain)
    {
        var revisions = Revisions;
        int lo = 0;
        int hi = revisions.Count - 1;
        int found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (revisions[mid].Main <= atMain)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found;
    }
}
