namespace EmbeddedRaft.Storage.BTree;

/// <summary>What <see cref="BTreeDatabase.Check"/> verified: every figure was counted from the pages on disk.</summary>
public sealed record CheckReport
{
    /// <summary>Pages reached from the newest meta page: meta, branch, leaf, overflow and freelist pages.</summary>
    public required long ReachablePageCount { get; init; }

    /// <summary>Pages listed in the freelist (none of them reachable).</summary>
    public required long FreePageCount { get; init; }

    /// <summary>The high-water mark: reachable plus free pages.</summary>
    public required long PageCount { get; init; }

    /// <summary>Number of buckets.</summary>
    public required long BucketCount { get; init; }

    /// <summary>Keys in all buckets together.</summary>
    public required long EntryCount { get; init; }

    /// <summary>Levels of the deepest bucket tree.</summary>
    public required int TreeDepth { get; init; }
}
