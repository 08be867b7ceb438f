namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// Everything the store remembers in memory about one key, as etcd's <c>keyIndex</c>: its
/// generations of revisions, oldest first. The last generation is empty when the key is deleted
/// (the delete's tombstone ended the one before it).
/// </summary>
/// <remarks>
/// Invariants: revisions grow across generations; every generation but the last is non-empty and
/// ends with a tombstone; <see cref="Modified"/> is the newest revision. Changed only by the
/// store's writer thread, under the index's write lock; read by readers under its read lock.
/// </remarks>
internal sealed class KeyHistory
{
    private readonly List<Generation> _generations = new(1);

    public KeyHistory(byte[] key)
    {
        Key = key;
    }

    public byte[] Key { get; }

    /// <summary>The newest revision written (put or tombstone).</summary>
    public Revision Modified { get; private set; }

    public IReadOnlyList<Generation> Generations => _generations;

    /// <summary>Nothing left: the key was compacted away (etcd's <c>isEmpty</c>).</summary>
    public bool IsEmpty => _generations.Count == 0 || (_generations.Count == 1 && _generations[0].IsEmpty);

    /// <summary>True when the key exists now (its last generation is live).</summary>
    public bool IsLive => _generations.Count > 0 && !_generations[^1].IsEmpty;

    /// <summary>Records a put at <paramref name="revision"/> (etcd's <c>keyIndex.put</c>).</summary>
    public void Put(Revision revision)
    {
        if (_generations.Count > 0 && revision <= Modified)
        {
            throw new InvariantViolationException($"MVCC key index: put at {revision} is not after the key's last revision {Modified}.");
        }

        if (_generations.Count == 0)
        {
            _generations.Add(new Generation());
        }

        var generation = _generations[^1];
        if (generation.IsEmpty)
        {
            generation.Created = revision;
        }

        generation.Revisions.Add(revision);
        generation.Version++;
        Modified = revision;
    }

    /// <summary>
    /// Ends the live generation with a tombstone at <paramref name="revision"/>; false (and nothing
    /// changes) when the key is not live (etcd's <c>ErrRevisionNotFound</c>).
    /// </summary>
    public bool Tombstone(Revision revision)
    {
        if (!IsLive)
        {
            return false;
        }

        Put(revision);
        _generations.Add(new Generation());
        return true;
    }

    /// <summary>
    /// Starts the history of a key first seen at open at <paramref name="modified"/>, whose stored
    /// value says the generation was created at <paramref name="created"/> and is at
    /// <paramref name="version"/> (earlier revisions were compacted away): etcd's <c>keyIndex.restore</c>.
    /// </summary>
    public void Restore(Revision created, Revision modified, long version)
    {
        if (_generations.Count != 0 && !IsEmpty)
        {
            throw new InvariantViolationException("MVCC key index: restore of a key that already has history.");
        }

        _generations.Clear();
        var generation = new Generation { Created = created, Version = version };
        generation.Revisions.Add(modified);
        _generations.Add(generation);
        Modified = modified;
    }

    /// <summary>
    /// The version of the key visible at main revision <paramref name="atMain"/>: its revision,
    /// the revision that created its generation, and its version; false when the key did not exist
    /// then (etcd's <c>keyIndex.get</c>).
    /// </summary>
    public bool TryGet(long atMain, out Revision modified, out Revision created, out long version)
    {
        var generation = FindGeneration(atMain);
        if (generation is not null && !generation.IsEmpty)
        {
            int n = generation.LastAtOrBelow(atMain);
            if (n >= 0)
            {
                modified = generation.Revisions[n];
                created = generation.Created;
                version = generation.Version - (generation.Revisions.Count - n - 1);
                return true;
            }
        }

        modified = default;
        created = default;
        version = 0;
        return false;
    }

    /// <summary>
    /// Drops the revisions a compaction at <paramref name="atMain"/> removes, adding those it keeps
    /// (the newest at or below it of a live generation) to <paramref name="available"/> (etcd's <c>keyIndex.compact</c>).
    /// </summary>
    public void Compact(long atMain, HashSet<Revision> available)
    {
        if (IsEmpty)
        {
            throw new InvariantViolationException("MVCC key index: compaction of an empty key history.");
        }

        var (generationIndex, revisionIndex) = FindCompactionPoint(atMain, available);
        var generation = _generations[generationIndex];
        if (!generation.IsEmpty)
        {
            if (revisionIndex != -1)
            {
                generation.Revisions.RemoveRange(0, revisionIndex);
            }

            // A generation reduced to its tombstone is gone: the delete itself is not kept.
            if (generation.Revisions.Count == 1 && generationIndex != _generations.Count - 1)
            {
                available.Remove(generation.Revisions[0]);
                generationIndex++;
            }
        }

        _generations.RemoveRange(0, generationIndex);
    }

    /// <summary>What <see cref="Compact"/> would add to <paramref name="available"/>, changing nothing (etcd's <c>keyIndex.keep</c>).</summary>
    public void Keep(long atMain, HashSet<Revision> available)
    {
        if (IsEmpty)
        {
            return;
        }

        var (generationIndex, revisionIndex) = FindCompactionPoint(atMain, available);
        var generation = _generations[generationIndex];
        if (!generation.IsEmpty && revisionIndex == generation.Revisions.Count - 1 && generationIndex != _generations.Count - 1)
        {
            available.Remove(generation.Revisions[revisionIndex]);
        }
    }

    /// <summary>etcd's <c>findGeneration</c>: the generation alive at <paramref name="atMain"/>, or null.</summary>
    private Generation? FindGeneration(long atMain)
    {
        int last = _generations.Count - 1;
        for (int i = last; i >= 0; i--)
        {
            var generation = _generations[i];
            if (generation.IsEmpty)
            {
                continue;
            }

            if (i != last && generation.Revisions[^1].Main <= atMain)
            {
                // The generation's tombstone is at or before atMain: the key was deleted then.
                return null;
            }

            if (generation.Revisions[0].Main <= atMain)
            {
                return generation;
            }
        }

        return null;
    }

    /// <summary>etcd's <c>doCompact</c>: the first generation not ended by atMain, and in it the newest revision at or below atMain (added to available), or -1.</summary>
    private (int GenerationIndex, int RevisionIndex) FindCompactionPoint(long atMain, HashSet<Revision> available)
    {
        int generationIndex = 0;
        while (generationIndex < _generations.Count - 1 && _generations[generationIndex].Revisions[^1].Main <= atMain)
        {
            generationIndex++;
        }

        var generation = _generations[generationIndex];
        int revisionIndex = generation.LastAtOrBelow(atMain);
        if (revisionIndex >= 0)
        {
            available.Add(generation.Revisions[revisionIndex]);
        }

        return (generationIndex, revisionIndex);
    }
}
