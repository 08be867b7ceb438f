using System.Collections.Concurrent;
using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The revisions written since the last B+tree commit (etcd's txReadBuffer): a reader that sees
/// revision R in the index finds each value either here or in a B+tree snapshot it began
/// under the same index lock.
/// </summary>
/// <remarks>
/// Why that is enough: the writer swaps in a fresh batch (under the index write lock) only after
/// the B+tree commit that holds this batch's revisions returned, and never removes entries from a
/// batch. A reader that took this batch under the read lock finds every uncommitted revision here;
/// one that took the next batch began its B+tree snapshot after this batch's commit. Entries are
/// added before the revision that makes them visible is published. Thread-safe.
/// </remarks>
internal sealed class PendingBatch
{
    private readonly ConcurrentDictionary<Revision, Entry> _entries = new();

    public int Count => _entries.Count;

    public void Add(Revision revision, bool tombstone, byte[] storedValue)
    {
        if (!_entries.TryAdd(revision, new Entry(tombstone, storedValue)))
        {
            throw new InvariantViolationException($"MVCC store: revision {revision} written twice in one batch.");
        }
    }

    public bool TryGet(Revision revision, out Entry entry) => _entries.TryGetValue(revision, out entry);

    /// <summary>The entries at or below <paramref name="maxMain"/>, in revision order (for hashing).</summary>
    public List<KeyValuePair<Revision, Entry>> UpTo(long maxMain)
    {
        var list = _entries.Where(e => e.Key.Main <= maxMain).ToList();
        list.Sort((a, b) => a.Key.CompareTo(b.Key));
        return list;
    }

    internal readonly record struct Entry(bool Tombstone, byte[] StoredValue);
}
