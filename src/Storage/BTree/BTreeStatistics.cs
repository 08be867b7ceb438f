namespace EmbeddedRaft.Storage.BTree;

/// <summary>Figures about a <see cref="BTreeDatabase"/> as of its latest commit; see <see cref="BTreeDatabase.GetStatistics"/>.</summary>
public sealed record BTreeStatistics
{
    /// <summary>Size of every page.</summary>
    public required int PageSizeBytes { get; init; }

    /// <summary>Pages the file uses (the high-water mark), meta pages included.</summary>
    public required long PageCount { get; init; }

    /// <summary>Pages free for reuse, or waiting for readers (or a synced commit) to release them.</summary>
    public required long FreePageCount { get; init; }

    /// <summary><see cref="PageCount"/> minus <see cref="FreePageCount"/>.</summary>
    public long UsedPageCount => PageCount - FreePageCount;

    /// <summary>Length of the file in bytes.</summary>
    public required long FileSizeBytes { get; init; }

    /// <summary>Levels of the deepest bucket tree (0 when every bucket is empty).</summary>
    public required int TreeDepth { get; init; }

    /// <summary>Number of buckets.</summary>
    public required long BucketCount { get; init; }

    /// <summary>Keys in all buckets together.</summary>
    public required long EntryCount { get; init; }

    /// <summary>Id of the latest commit.</summary>
    public required long Txid { get; init; }

    /// <summary>Bytes of verified pages held in the page cache.</summary>
    public required long CachedBytes { get; init; }
}
