using System.Buffers.Binary;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// The whole-file verification behind <see cref="BTreeDatabase.Check"/>. Reads every page from disk,
/// bypassing the cache, so it checks what a reopen would find. Runs under the writer gate.
/// </summary>
internal sealed class TreeChecker
{
    private readonly BTreeDatabase _db;
    private readonly MetaState _meta;
    private readonly bool[] _reachable;
    private long _reachableCount;
    private int _treeDepth;

    public TreeChecker(BTreeDatabase db, MetaState meta)
    {
        _db = db;
        _meta = meta;
        _reachable = new bool[meta.PageCount];
    }

    public CheckReport Run()
    {
        var (bucketCount, entryCount) = WalkTrees();
        return CheckFreelist(bucketCount, entryCount);
    }

    /// <summary>
    /// The pages of the file that the commit does not use: neither a meta page, nor reachable from its
    /// trees (verified on the way as <see cref="Run"/> does), nor in its freelist run (whose contents
    /// are not read: this is how a damaged freelist is rebuilt). Ascending.
    /// </summary>
    public List<long> FreePagesByReachability()
    {
        WalkTrees();
        if (_meta.FreelistPage != 0)
        {
            Mark(_meta.FreelistPage, _meta.FreelistPageCount, allowMeta: false);
        }

        var free = new List<long>();
        for (long id = 2; id < _meta.PageCount; id++)
        {
            if (!_reachable[id])
            {
                free.Add(id);
            }
        }

        return free;
    }

    /// <summary>Marks the meta pages and every page the catalog and the buckets reach, verifying each; returns the bucket and entry counts.</summary>
    private (long BucketCount, long EntryCount) WalkTrees()
    {
        Mark(0, 1, allowMeta: true);
        Mark(1, 1, allowMeta: true);
        long bucketCount = 0;
        long entryCount = 0;
        if (_meta.CatalogRoot != 0)
        {
            var buckets = new List<(string Name, long Root, long Count)>();
            int depth = -1;
            Walk(_meta.CatalogRoot, default, default, 1, ref depth, buckets);
            bucketCount = buckets.Count;
            foreach (var (name, root, count) in buckets)
            {
                long counted = 0;
                if (root != 0)
                {
                    int bucketDepth = -1;
                    counted = Walk(root, default, default, 1, ref bucketDepth, null);
                    _treeDepth = Math.Max(_treeDepth, bucketDepth);
                }

                if (counted != count)
                {
                    throw _db.Corrupt(root, $"bucket '{name}' records {count} keys but its tree holds {counted}");
                }

                entryCount += counted;
            }
        }

        if (bucketCount != _meta.BucketCount)
        {
            throw new CorruptionException(_db.Path, 0, $"the meta page records {_meta.BucketCount} buckets but the catalog holds {bucketCount}");
        }

        return (bucketCount, entryCount);
    }

    private CheckReport CheckFreelist(long bucketCount, long entryCount)
    {
        var free = new List<long>();
        if (!_meta.FreelistWritten)
        {
            // A NoSync commit wrote no freelist: the run it names is the last synced commit's (in use,
            // and stale for this commit); the writer's list, checked against reachability below, is its freelist.
            if (_meta.FreelistPage != 0)
            {
                Mark(_meta.FreelistPage, _meta.FreelistPageCount, allowMeta: false);
            }

            free = _db.FreelistSnapshotForCheck();
        }
        else if (_meta.FreelistPage != 0)
        {
            Mark(_meta.FreelistPage, _meta.FreelistPageCount, allowMeta: false);
            var run = _db.LoadRun(_meta.FreelistPage, cache: false);
            if (run.Length != _meta.FreelistPageCount * _db.PageSizeBytes)
            {
                throw _db.Corrupt(_meta.FreelistPage, "the freelist run's length differs from the meta page's");
            }

            _db.ReadFreelistRun(run, _meta.FreelistPage, _meta.PageCount, free);
        }

        var isFree = new bool[_meta.PageCount];
        foreach (long id in free)
        {
            if (_reachable[id])
            {
                throw _db.Corrupt(id, "the page is both reachable and in the freelist");
            }

            if (isFree[id])
            {
                throw _db.Corrupt(id, "the page is in the freelist twice");
            }

            isFree[id] = true;
        }

        for (long id = 0; id < _meta.PageCount; id++)
        {
            if (!_reachable[id] && !isFree[id])
            {
                throw _db.Corrupt(id, "the page is neither reachable nor free (leaked)");
            }
        }

        var inMemory = _db.FreelistSnapshotForCheck();
        free.Sort();
        if (!inMemory.SequenceEqual(free))
        {
            throw _db.Corrupt(_meta.FreelistPage, $"the freelist on disk ({free.Count} pages) differs from the one in memory ({inMemory.Count} pages)");
        }

        return new CheckReport
        {
            ReachablePageCount = _reachableCount,
            FreePageCount = free.Count,
            PageCount = _meta.PageCount,
            BucketCount = bucketCount,
            EntryCount = entryCount,
            TreeDepth = _treeDepth,
        };
    }

    /// <summary>Verifies the subtree at <paramref name="pageId"/>; keys must lie in [lower, upper) (empty bound: none). Returns its entry count.</summary>
    private long Walk(long pageId, ReadOnlyMemory<byte> lower, ReadOnlyMemory<byte> upper, int level, ref int leafLevel, List<(string, long, long)>? buckets)
    {
        if (level > Tree.MaxDepth)
        {
            throw _db.TooDeep(pageId);
        }

        Mark(pageId, 1, allowMeta: false);
        var page = _db.LoadRun(pageId, cache: false);
        var kind = PageFormat.Kind(page);
        if (kind != PageKind.Branch && kind != PageKind.Leaf)
        {
            throw _db.Corrupt(pageId, $"expected a branch or leaf page, found kind {(int)kind}");
        }

        if (page.Length != _db.PageSizeBytes)
        {
            throw _db.Corrupt(pageId, "a branch or leaf page claims to be a multi-page run");
        }

        int count = PageFormat.Count(page);
        if (count == 0)
        {
            throw _db.Corrupt(pageId, "the page has no entries");
        }

        var keys = new ReadOnlyMemory<byte>[count];
        int dataStart = PageHeader.SizeOf + (count * PageFormat.SlotSizeBytes);
        for (int i = 0; i < count; i++)
        {
            int offset = PageFormat.EntryOffset(page, i);
            int headerSize = kind == PageKind.Leaf ? LeafEntryHeader.SizeOf : BranchEntryHeader.SizeOf;
            if (offset < dataStart || offset + headerSize > page.Length)
            {
                throw _db.Corrupt(pageId, $"entry {i} starts outside the page");
            }

            int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(offset + (kind == PageKind.Leaf ? 0 : 8)));
            int end = offset + headerSize + keyLength;
            if (kind == PageKind.Leaf)
            {
                PageFormat.LeafValue(page, i, out _, out int valueLength, out bool isOverflow);
                end += isOverflow ? sizeof(long) : valueLength;
                if (valueLength < 0)
                {
                    throw _db.Corrupt(pageId, $"entry {i} has a negative value length");
                }
            }

            if (keyLength == 0 || end > page.Length)
            {
                throw _db.Corrupt(pageId, $"entry {i} is empty or runs past the end of the page");
            }

            keys[i] = page.AsMemory(offset + headerSize, keyLength);
            if (i > 0 && keys[i - 1].Span.SequenceCompareTo(keys[i].Span) >= 0)
            {
                throw _db.Corrupt(pageId, $"keys {i - 1} and {i} are out of order");
            }
        }

        if (!lower.IsEmpty && keys[0].Span.SequenceCompareTo(lower.Span) < 0)
        {
            throw _db.Corrupt(pageId, "the first key is below the bound its parent gives");
        }

        if (!upper.IsEmpty && keys[^1].Span.SequenceCompareTo(upper.Span) >= 0)
        {
            throw _db.Corrupt(pageId, "the last key is not below the bound its parent gives");
        }

        if (kind == PageKind.Branch)
        {
            long total = 0;
            for (int i = 0; i < count; i++)
            {
                var childUpper = i + 1 < count ? keys[i + 1] : upper;
                total += Walk(PageFormat.BranchChild(page, i), keys[i], childUpper, level + 1, ref leafLevel, buckets);
            }

            return total;
        }

        if (leafLevel < 0)
        {
            leafLevel = level;
        }
        else if (leafLevel != level)
        {
            throw _db.Corrupt(pageId, $"a leaf at depth {level} where others are at depth {leafLevel}");
        }

        for (int i = 0; i < count; i++)
        {
            PageFormat.LeafValue(page, i, out int valueOffset, out int valueLength, out bool isOverflow);
            if (isOverflow)
            {
                long runId = BinaryPrimitives.ReadInt64LittleEndian(page.AsSpan(valueOffset));
                int pages = PageFormat.RunPages(valueLength, _db.PageSizeBytes);
                Mark(runId, pages, allowMeta: false);
                var run = _db.LoadRun(runId, cache: false);
                if (PageFormat.Kind(run) != PageKind.Overflow || run.Length != pages * _db.PageSizeBytes)
                {
                    throw _db.Corrupt(runId, $"expected an overflow run of {pages} pages for entry {i} of page {pageId}");
                }
            }

            if (buckets is not null)
            {
                if (isOverflow || valueLength != Transaction.BucketRecordSizeBytes)
                {
                    throw _db.Corrupt(pageId, $"catalog entry {i} is not a bucket record");
                }

                var record = page.AsSpan(valueOffset, valueLength);
                buckets.Add((System.Text.Encoding.UTF8.GetString(keys[i].Span), BinaryPrimitives.ReadInt64LittleEndian(record), BinaryPrimitives.ReadInt64LittleEndian(record[8..])));
            }
        }

        return count;
    }

    private void Mark(long pageId, int count, bool allowMeta)
    {
        if ((!allowMeta && pageId < 2) || pageId < 0 || count < 1 || pageId + count > _meta.PageCount)
        {
            throw _db.Corrupt(pageId, $"a reference to {count} page(s) outside 2..{_meta.PageCount - 1}");
        }

        for (long id = pageId; id < pageId + count; id++)
        {
            if (_reachable[id])
            {
                throw _db.Corrupt(id, "the page is reachable twice");
            }

            _reachable[id] = true;
            _reachableCount++;
        }
    }
}
