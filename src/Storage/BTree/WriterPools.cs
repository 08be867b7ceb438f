namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Buffers the writer recycles from one write transaction to the next, so a steady stream of
/// commits allocates (almost) nothing the GC has to find and free. Owned by the writer: only the
/// thread holding the writer gate touches it.
/// </summary>
/// <remarks>
/// Why recycling a page buffer is safe: the writer returns a buffer here only when it replaces it
/// in the page cache with the new contents of the same page id. That page id was free and released,
/// i.e. freed by a transaction no older than every open reader's snapshot, so no open reader can
/// reach the old contents, and no earlier write transaction's nodes are alive. Values handed out by
/// <see cref="Bucket.TryGet"/> and cursors are documented as valid only until their transaction ends.
/// Buffers evicted for capacity are never recycled (a reader may still hold them).
/// </remarks>
internal sealed class WriterPools
{
    public const int ArenaChunkBytes = 64 * 1024;

    /// <summary>Entries a list must hold to go to the pool of big lists (append runs).</summary>
    public const int BigListEntries = 16 * 1024;

    private const long MaxPooledPageBytes = 128L * 1024 * 1024;
    private const int MaxPooledLists = 32 * 1024;
    private const int MaxPooledBigLists = 4;
    private const int MaxPooledChunks = 256;

    /// <summary>Node maps and dirty page lists kept: one per bucket a transaction commonly changes is plenty.</summary>
    private const int MaxPooledMaps = 8;

    private readonly int _maxPooledPages;
    private readonly Stack<List<NodeEntry>> _bigLists = new();

    private readonly int _pageSizeBytes;
    private readonly Stack<byte[]> _pages = new();
    private readonly Stack<List<NodeEntry>> _lists = new();
    private readonly Stack<byte[]> _chunks = new();
    private readonly Stack<Dictionary<long, Node>> _nodeMaps = new();
    private readonly Stack<List<(long PageId, byte[] Buffer, bool SealAtWrite)>> _dirtyPageLists = new();

    public WriterPools(int pageSizeBytes)
    {
        _pageSizeBytes = pageSizeBytes;
        _maxPooledPages = (int)(MaxPooledPageBytes / pageSizeBytes);
    }

    /// <summary>A page buffer with unspecified contents: the caller writes every byte.</summary>
    public byte[] RentPage() =>
        _pages.TryPop(out var page) ? page : GC.AllocateUninitializedArray<byte>(_pageSizeBytes, pinned: true);

    public void ReturnReplacedPage(byte[] page)
    {
        if (page.Length == _pageSizeBytes && _pages.Count < _maxPooledPages)
        {
            _pages.Push(page);
        }
    }

    public List<NodeEntry> RentList(int capacity)
    {
        if (_lists.TryPop(out var list))
        {
            list.EnsureCapacity(capacity);
            return list;
        }

        return new List<NodeEntry>(capacity);
    }

    /// <summary>A list with room for <see cref="BigListEntries"/>: for a leaf receiving an append run.</summary>
    public List<NodeEntry> RentBigList() => _bigLists.TryPop(out var list) ? list : new List<NodeEntry>(BigListEntries);

    public void ReturnList(List<NodeEntry> list)
    {
        if (list.Capacity >= BigListEntries)
        {
            if (_bigLists.Count < MaxPooledBigLists)
            {
                list.Clear();
                _bigLists.Push(list);
            }
        }
        else if (_lists.Count < MaxPooledLists && list.Capacity <= 1024)
        {
            list.Clear();
            _lists.Push(list);
        }
    }

    /// <summary>An empty node map for a tree's materialised nodes (it keeps the capacity earlier transactions grew).</summary>
    public Dictionary<long, Node> RentNodeMap() => _nodeMaps.TryPop(out var map) ? map : [];

    /// <summary>Takes back a map whose nodes are dead (their tree has spilled); clears it, so no node outlives its transaction here.</summary>
    public void ReturnNodeMap(Dictionary<long, Node> map)
    {
        map.Clear();
        if (_nodeMaps.Count < MaxPooledMaps)
        {
            _nodeMaps.Push(map);
        }
    }

    /// <summary>An empty list for a write transaction's dirty pages.</summary>
    public List<(long PageId, byte[] Buffer, bool SealAtWrite)> RentDirtyPageList() =>
        _dirtyPageLists.TryPop(out var list) ? list : [];

    /// <summary>Takes back a dirty page list once its transaction has ended; clears it (the buffers belong to the cache or the pool now).</summary>
    public void ReturnDirtyPageList(List<(long PageId, byte[] Buffer, bool SealAtWrite)> list)
    {
        list.Clear();
        if (_dirtyPageLists.Count < MaxPooledMaps)
        {
            _dirtyPageLists.Push(list);
        }
    }

    public byte[] RentChunk() => _chunks.TryPop(out var chunk) ? chunk : new byte[ArenaChunkBytes];

    public void ReturnChunk(byte[] chunk)
    {
        if (_chunks.Count < MaxPooledChunks)
        {
            _chunks.Push(chunk);
        }
    }
}
