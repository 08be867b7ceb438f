using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// The synced watchers by what they watch (etcd's <c>watcherGroup</c>): one-key watches in a hash map
/// by key, range watches in a <see cref="RangeTree"/>. Finding the watchers of a changed key is one
/// hash lookup plus one interval stab, never a walk over all watchers.
/// </summary>
/// <remarks>Not thread-safe: used under the hub's lock.</remarks>
internal sealed class WatcherIndex
{
    private readonly Dictionary<byte[], WatcherGroup> _keys = new(new KeyBytesComparer());
    private readonly Dictionary<byte[], WatcherGroup>.AlternateLookup<ReadOnlySpan<byte>> _keysBySpan;
    private readonly RangeTree _ranges = new();
    private readonly List<WatcherGroup> _groups = [];

    public WatcherIndex()
    {
        _keysBySpan = _keys.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>Watchers in the index.</summary>
    public int Count { get; private set; }

    /// <summary>Range watchers in the index (the rest watch one key each).</summary>
    public int RangeCount { get; private set; }

    public void Add(Watcher watcher)
    {
        if (watcher.Group is not null)
        {
            throw new InvariantViolationException($"MVCC watch: watcher {watcher.Id} added to the index twice.");
        }

        WatcherGroup group;
        if (watcher.IsSingleKey)
        {
            if (!_keys.TryGetValue(watcher.Key, out group!))
            {
                group = new WatcherGroup(watcher.Key, null);
                _keys.Add(watcher.Key, group);
            }
        }
        else
        {
            group = _ranges.GetOrAdd(watcher.Key, watcher.End);
        }

        group.Add(watcher);
        Count++;
        if (!watcher.IsSingleKey)
        {
            RangeCount++;
        }
    }

    public void Remove(Watcher watcher)
    {
        var group = watcher.Group ?? throw new InvariantViolationException($"MVCC watch: watcher {watcher.Id} removed from the index it is not in.");
        group.Remove(watcher);
        Count--;
        if (!watcher.IsSingleKey)
        {
            RangeCount--;
        }

        if (group.Members.Count == 0)
        {
            if (watcher.IsSingleKey)
            {
                _keys.Remove(group.Key);
            }
            else
            {
                _ranges.Remove(group);
            }
        }
    }

    /// <summary>Adds to <paramref name="into"/> every range watcher (a walk of every range: for a few, see <see cref="RangeCount"/>).</summary>
    public void CollectRangeWatchers(List<Watcher> into)
    {
        if (_ranges.Count == 0)
        {
            return;
        }

        _groups.Clear();
        _ranges.CollectAll(_groups);
        foreach (var group in _groups)
        {
            into.AddRange(group.Members);
        }

        _groups.Clear();
    }

    /// <summary>Adds to <paramref name="into"/> every group whose key or range holds <paramref name="key"/>.</summary>
    public void Find(ReadOnlySpan<byte> key, List<WatcherGroup> into)
    {
        if (_keys.Count > 0 && _keysBySpan.TryGetValue(key, out var group))
        {
            into.Add(group);
        }

        if (_ranges.Count > 0)
        {
            _ranges.Stab(key, into);
        }
    }
}
