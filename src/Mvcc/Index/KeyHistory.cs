namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// Everything the store remembers in memory about one key, as etcd's <c>keyIndex</c>: its
/// generations of revisions, oldest first. The last generation is empty when the key is deleted
/// (the delete's tombstone ended the one before it).
/// </summary>
/// <remarks>
/// <para>Layout: the last generation (the only one of a key never deleted since the last
/// compaction) is held in this object's own fields, its revisions inline while there is one
/// and its first and last inline always (<see cref="RevisionList"/>: a put, and a read at the
/// present, never read the revisions' array); generations a delete ended move to <see cref="Generation"/>
/// objects. A key whose history is the one put that created it, or that put and one more, has no
/// object of this kind at all: <see cref="KeyIndex"/> holds those revisions in its chunk's arrays
/// and makes one (equal to them) when the key is written a third time, deleted, or compacted past
/// its first put.</para>
/// <para>Generations are numbered 0 (oldest) to <see cref="LastGeneration"/> (the inline one).
/// Invariants: revisions grow across generations; every generation but the last is non-empty and
/// ends with a tombstone. Changed only by the
/// store's writer thread, under the index's write lock; read by readers under its read lock.</para>
/// </remarks>
internal sealed class KeyHistory
{
    // The last generation.
    private Revision _created;
    private long _version;
    private RevisionList _revisions;

    /// <summary>Generations before the last, oldest first; null while there are none (most keys).</summary>
    private List<Generation>? _ended;

    public KeyHistory(byte[] key)
    {
        Key = key;
    }

    public byte[] Key { get; }

    /// <summary>The newest revision written (put or tombstone); default before the first. Derived, not stored: one field less per key.</summary>
    public Revision Modified => _revisions.Count > 0 ? _revisions.Last : _ended is { } ended ? ended[^1].Revisions.Last : default;

    /// <summary>Nothing left: the key was compacted away (etcd's <c>isEmpty</c>).</summary>
    public bool IsEmpty => _ended is null && _revisions.Count == 0;

    /// <summary>True when the key exists now (its last generation is live).</summary>
    public bool IsLive => _revisions.Count > 0;

    private int LastGeneration => _ended?.Count ?? 0;

    /// <summary>
    /// True when the history is exactly one put that created the key (one live generation of one
    /// revision, created by it, version 1): what the index holds without a history object
    /// (<see cref="KeyIndex"/>), and its revision.
    /// </summary>
    public bool IsSinglePut(out Revision revision)
    {
        revision = _revisions.Count == 1 ? _revisions.First : default;
        return _ended is null && _revisions.Count == 1 && _version == 1 && _created == revision;
    }

    /// <summary>
    /// True when the history is exactly two puts since the key was created (one live generation of
    /// two revisions, created by the first, version 2): what a <see cref="KeyIndex"/> chunk holds
    /// without a history object, and the two revisions.
    /// </summary>
    public bool IsTwoPuts(out Revision first, out Revision second)
    {
        first = _revisions.Count == 2 ? _revisions.First : default;
        second = _revisions.Count == 2 ? _revisions.Last : default;
        return _ended is null && _revisions.Count == 2 && _version == 2 && _created == first;
    }

    /// <summary>Each generation's revisions, oldest generation first, the last one possibly empty (for tests).</summary>
    public IReadOnlyList<Revision[]> GenerationRevisions()
    {
        var all = new List<Revision[]>(LastGeneration + 1);
        for (int g = 0; g <= LastGeneration; g++)
        {
            all.Add(RevisionsOf(g).ToArray());
        }

        return all;
    }

    /// <summary>Records a put at <paramref name="revision"/> (etcd's <c>keyIndex.put</c>).</summary>
    public void Put(Revision revision)
    {
        if (Modified != default && revision <= Modified)
        {
            throw new InvariantViolationException($"MVCC key index: put at {revision} is not after the key's last revision {Modified}.");
        }

        if (_revisions.Count == 0)
        {
            _created = revision;
        }

        _revisions.Add(revision);
        _version++;
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
        (_ended ??= new List<Generation>(1)).Add(new Generation(_created, _version, _revisions));
        _created = default;
        _version = 0;
        _revisions = default;
        return true;
    }

    /// <summary>
    /// Starts the history of a key first seen at open at <paramref name="modified"/>, whose stored
    /// value says the generation was created at <paramref name="created"/> and is at
    /// <paramref name="version"/> (earlier revisions were compacted away): etcd's <c>keyIndex.restore</c>.
    /// </summary>
    public void Restore(Revision created, Revision modified, long version)
    {
        if (!IsEmpty)
        {
            throw new InvariantViolationException("MVCC key index: restore of a key that already has history.");
        }

        _created = created;
        _version = version;
        _revisions = default;
        _revisions.Add(modified);
    }

    /// <summary>
    /// The version of the key visible at main revision <paramref name="atMain"/>: its revision,
    /// the revision that created its generation, and its version; false when the key did not exist
    /// then (etcd's <c>keyIndex.get</c>).
    /// </summary>
    public bool TryGet(long atMain, out Revision modified, out Revision created, out long version)
    {
        int g = FindGeneration(atMain);
        if (g >= 0)
        {
            ref readonly var revisions = ref RevisionsOf(g);
            int n = revisions.LastAtOrBelow(atMain);
            if (n >= 0)
            {
                modified = revisions[n];
                created = g == LastGeneration ? _created : _ended![g].Created;
                version = (g == LastGeneration ? _version : _ended![g].Version) - (revisions.Count - n - 1);
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
        ref var revisions = ref RevisionsOf(generationIndex);
        if (revisions.Count > 0)
        {
            if (revisionIndex != -1)
            {
                revisions.RemoveFirst(revisionIndex);
            }

            // A generation reduced to its tombstone is gone: the delete itself is not kept.
            if (revisions.Count == 1 && generationIndex != LastGeneration)
            {
                available.Remove(revisions[0]);
                generationIndex++;
            }
        }

        // Generations before generationIndex are all ended ones (generationIndex <= LastGeneration).
        if (generationIndex > 0)
        {
            _ended!.RemoveRange(0, generationIndex);
            if (_ended.Count == 0)
            {
                _ended = null;
            }
        }
    }

    /// <summary>What <see cref="Compact"/> would add to <paramref name="available"/>, changing nothing (etcd's <c>keyIndex.keep</c>).</summary>
    public void Keep(long atMain, HashSet<Revision> available)
    {
        if (IsEmpty)
        {
            return;
        }

        var (generationIndex, revisionIndex) = FindCompactionPoint(atMain, available);
        ref readonly var revisions = ref RevisionsOf(generationIndex);
        if (revisions.Count > 0 && revisionIndex == revisions.Count - 1 && generationIndex != LastGeneration)
        {
            available.Remove(revisions[revisionIndex]);
        }
    }

    /// <summary>Generation <paramref name="g"/>'s revisions, in place: the inline ones for the last.</summary>
    private ref RevisionList RevisionsOf(int g)
    {
        if (g == LastGeneration)
        {
            return ref _revisions;
        }

        return ref _ended![g].Revisions;
    }

    /// <summary>etcd's <c>findGeneration</c>: the generation alive at <paramref name="atMain"/>, or -1.</summary>
    private int FindGeneration(long atMain)
    {
        int last = LastGeneration;
        for (int i = last; i >= 0; i--)
        {
            ref readonly var revisions = ref RevisionsOf(i);
            if (revisions.Count == 0)
            {
                continue;
            }

            if (i != last && revisions.Last.Main <= atMain)
            {
                // The generation's tombstone is at or before atMain: the key was deleted then.
                return -1;
            }

            if (revisions.First.Main <= atMain)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>etcd's <c>doCompact</c>: the first generation not ended by atMain, and in it the newest revision at or below atMain (added to available), or -1.</summary>
    private (int GenerationIndex, int RevisionIndex) FindCompactionPoint(long atMain, HashSet<Revision> available)
    {
        int generationIndex = 0;
        while (generationIndex < LastGeneration && _ended![generationIndex].Revisions.Last.Main <= atMain)
        {
            generationIndex++;
        }

        ref readonly var revisions = ref RevisionsOf(generationIndex);
        int revisionIndex = revisions.LastAtOrBelow(atMain);
        if (revisionIndex >= 0)
        {
            available.Add(revisions[revisionIndex]);
        }

        return (generationIndex, revisionIndex);
    }
}
