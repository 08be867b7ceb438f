namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// An independent model of the store's history for checking watches: the test applies each write
/// here as it applies it to the store, and the model says which events the write created (keys,
/// values, create revisions, versions, the previous version) in etcd's order.
/// </summary>
internal sealed class WatchHistoryModel
{
    private readonly SortedDictionary<string, (string Value, long Create, long Version, long Mod)> _live = new(StringComparer.Ordinal);

    public long Revision { get; private set; } = 1;

    public List<ModelEvent> Events { get; } = [];

    /// <summary>Applies one write transaction's changes (puts and deletes in order); returns whether it created a revision.</summary>
    public bool Apply(IEnumerable<(string Key, string? Value)> puts, IEnumerable<(string From, string? To)> deletes, bool deletesFirst)
    {
        long revision = Revision + 1;
        var changes = new List<ModelEvent>();
        void Delete((string From, string? To) range)
        {
            var keys = range.To is null
                ? (_live.ContainsKey(range.From) ? [range.From] : [])
                : _live.Keys.Where(k => string.CompareOrdinal(k, range.From) >= 0 && string.CompareOrdinal(k, range.To) < 0).ToList();
            foreach (var key in keys)
            {
                var old = _live[key];
                changes.Add(new ModelEvent(revision, true, key, string.Empty, 0, 0, (old.Value, old.Mod)));
                _live.Remove(key);
            }
        }

        void Put((string Key, string? Value) put)
        {
            (string Value, long Mod)? previous = _live.TryGetValue(put.Key, out var old) ? (old.Value, old.Mod) : null;
            var now = previous is null ? (put.Value!, revision, 1L, revision) : (put.Value!, old.Create, old.Version + 1, revision);
            _live[put.Key] = now;
            changes.Add(new ModelEvent(revision, false, put.Key, now.Item1, now.Item2, now.Item3, previous));
        }

        if (deletesFirst)
        {
            foreach (var d in deletes)
            {
                Delete(d);
            }
        }

        foreach (var p in puts)
        {
            Put(p);
        }

        if (!deletesFirst)
        {
            foreach (var d in deletes)
            {
                Delete(d);
            }
        }

        if (changes.Count == 0)
        {
            return false;
        }

        Revision = revision;
        Events.AddRange(changes);
        return true;
    }

    /// <summary>One expected event. <see cref="Prev"/> is the key's version before it (value, mod revision), null when the event created the key.</summary>
    internal sealed record ModelEvent(long Revision, bool IsDelete, string Key, string Value, long Create, long Version, (string Value, long Mod)? Prev)
    {
        public override string ToString() => IsDelete ? $"delete {Key}@{Revision}" : $"put {Key}={Value}@{Revision}";
    }
}
