namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// The live watchers of one key, or of one range [<see cref="Key"/>, <see cref="End"/>): the entries
/// of <see cref="WatcherIndex"/>. Watchers with the same key or range share one group, so an event
/// costs one lookup per distinct watched key or range, not one per watcher.
/// </summary>
/// <remarks>
/// Invariant: every member's <see cref="Watcher.Group"/> is this group and its
/// <see cref="Watcher.SlotInGroup"/> its position in <see cref="Members"/>, so removal is O(1)
/// (swap with the last). Changed only under the hub's lock.
/// </remarks>
internal sealed class WatcherGroup(byte[] key, byte[]? end)
{
    public byte[] Key { get; } = key;

    /// <summary>The exclusive end of a range group, null for every key &gt;= <see cref="Key"/>; unused for a single-key group.</summary>
    public byte[]? End { get; } = end;

    public List<Watcher> Members { get; } = new(1);

    public void Add(Watcher watcher)
    {
        watcher.Group = this;
        watcher.SlotInGroup = Members.Count;
        Members.Add(watcher);
    }

    public void Remove(Watcher watcher)
    {
        int slot = watcher.SlotInGroup;
        if (!ReferenceEquals(watcher.Group, this) || slot >= Members.Count || !ReferenceEquals(Members[slot], watcher))
        {
            throw new InvariantViolationException("MVCC watch: removing a watcher from a group it is not in.");
        }

        var last = Members[^1];
        Members[slot] = last;
        last.SlotInGroup = slot;
        Members.RemoveAt(Members.Count - 1);
        watcher.Group = null;
        watcher.SlotInGroup = -1;
    }
}
