using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// One B+tree (a bucket's keyspace, or the catalog of buckets) as seen by one transaction: reads go
/// through the cached pages of the transaction's snapshot; a write transaction materialises the
/// pages on the path to each change as <see cref="Node"/>s and writes them to new pages at commit.
/// </summary>
/// <remarks>Not thread-safe: a tree belongs to one transaction, used by one thread at a time.</remarks>
internal sealed class Tree
{
    /// <summary>Slot, leaf entry header and an overflow page id: the most an entry adds to its key.</summary>
    public const int LargestEntryOverheadBytes = PageFormat.SlotSizeBytes + LeafEntryHeader.SizeOf + sizeof(long);

    /// <summary>Deepest tree a lookup will descend before calling the file corrupt (a cycle of pages).</summary>
    public const int MaxDepth = 64;

    private readonly Transaction _tx;
    private readonly BTreeDatabase _db;
    private Dictionary<long, Node>? _nodes;
    private Node? _root;
    private Node? _appendLeaf;

    /// <summary>Page-mode buffers of leaves converted to entry mode: their entries slice them until the spill ends.</summary>
    private List<byte[]>? _detachedPages;

    /// <summary>True once a delete ran in this transaction: only deletes make nodes need rebalancing.</summary>
    private bool _deleted;

    /// <summary>Reused by <see cref="SplitPoints"/>; each result is consumed before the next call. Made
    /// on the first split: a read transaction's trees never split.</summary>
    private List<(int Start, int Count)>? _splitGroups;
    private List<(long Page, int Count)>? _overflowFrees;

    public Tree(Transaction tx, long rootPageId, long count)
    {
        _tx = tx;
        _db = tx.Database;
        RootPageId = rootPageId;
        OriginalRootPageId = rootPageId;
        Count = count;
    }

    /// <summary>Root page; 0 for an empty tree. Changes only at commit.</summary>
    public long RootPageId { get; private set; }

    public long OriginalRootPageId { get; }

    /// <summary>Entries in the tree, as of this transaction's changes.</summary>
    public long Count { get; private set; }

    /// <summary>Incremented by every change; cursors use it to refuse use after a change.</summary>
    public int Version { get; private set; }

    /// <summary>True when this transaction changed the tree.</summary>
    public bool Dirty { get; set; }

    /// <summary>Largest leaf entry (slot included) stored inline; larger values go to overflow runs.</summary>
    public static int MaxInlineEntryBytes(int pageSizeBytes) => (pageSizeBytes - PageHeader.SizeOf) / 4;

    // ---------------------------------------------------------------- reads

    public bool TryGet(ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        if (_root is not null)
        {
            return TryGetThroughNodes(key, out value);
        }

        long id = RootPageId;
        if (id == 0)
        {
            value = default;
            return false;
        }

        for (int depth = 0; depth < MaxDepth; depth++)
        {
            var page = _db.ReadTreePage(id);
            if (PageFormat.Kind(page) == PageKind.Branch)
            {
                id = PageFormat.BranchChild(page, PageFormat.BranchSearch(page, key));
                continue;
            }

            // A point lookup through committed pages (a read): its leaf is most likely cold.
            int index = PageFormat.LeafLowerBoundPrefetched(page, key, out bool exact);
            value = exact ? PageValue(page, index) : default;
            return exact;
        }

        throw _db.TooDeep(id);
    }

    /// <summary>True when <see cref="FindMany"/> may be used: the tree is read through committed pages only (a read transaction's, or one that changed nothing).</summary>
    public bool CanFindMany => _root is null;

    /// <summary>
    /// Point lookups of <paramref name="hits"/>.Length keys (<paramref name="keys"/>: that many keys of
    /// <paramref name="keyLength"/> bytes, back to back) through committed pages, level by level: at
    /// each level every lookup's page is found in the cache and its first lines requested
    /// (<see cref="PageFormat.PrefetchHead"/>) before any of them is searched, every leaf's entries
    /// are requested before any leaf is searched, and every found value's lines before the caller
    /// reads one. A lookup of a random key in a large tree waits for a cache miss at each of those
    /// steps; done one after another, the waits add up, done this way, the waits of one step overlap
    /// (software pipelining). Each hit is the leaf and index of the key's entry, or a null page
    /// (absent); <see cref="ValueAt"/> reads it. Same answers as <see cref="TryGet"/> (tested).
    /// </summary>
    /// <exception cref="InvalidOperationException">The tree has materialised nodes (<see cref="CanFindMany"/> is false).</exception>
    /// <exception cref="CorruptionException">A page on a path is not a branch or leaf, or the tree is deeper than <see cref="MaxDepth"/>.</exception>
    public void FindMany(ReadOnlySpan<byte> keys, int keyLength, Span<LeafHit> hits)
    {
        if (!CanFindMany)
        {
            throw new InvalidOperationException("FindMany reads committed pages only; this tree has changes of its own.");
        }

        if (keys.Length != keyLength * hits.Length)
        {
            throw new ArgumentException($"{hits.Length} keys of {keyLength} bytes need {keyLength * hits.Length} bytes, not {keys.Length}.", nameof(keys));
        }

        // Every lookup starts at the root: a descent's pages stay in the hits (Page = the page of
        // its current level, Index = -2 while it descends) until each ends on its leaf's entry or on -1.
        long root = RootPageId;
        for (int i = 0; i < hits.Length; i++)
        {
            hits[i] = new LeafHit(null, root == 0 ? -1 : -2);
        }

        Span<long> ids = hits.Length <= 128 ? stackalloc long[hits.Length] : new long[hits.Length];
        ids.Fill(root);
        for (int depth = 0; depth < MaxDepth; depth++)
        {
            // Step 1: every descending lookup's page of this level, its header and slots requested.
            bool descending = false;
            for (int i = 0; i < hits.Length; i++)
            {
                if (hits[i].Index == -2)
                {
                    var page = _db.TreePageBuffer(ids[i]);
                    PageFormat.PrefetchHead(page);
                    hits[i] = new LeafHit(page, -2);
                    descending = true;
                }
            }

            if (!descending)
            {
                break;
            }

            // Step 2: branches searched (their child is the next level's page); leaves' entries requested.
            for (int i = 0; i < hits.Length; i++)
            {
                if (hits[i].Index != -2)
                {
                    continue;
                }

                var page = _db.CheckTreePage(ids[i], hits[i].Page!);
                if (PageFormat.Kind(page) == PageKind.Branch)
                {
                    ids[i] = PageFormat.BranchChild(page, PageFormat.BranchSearch(page, keys.Slice(i * keyLength, keyLength)));
                    hits[i] = new LeafHit(null, -2);
                }
                else
                {
                    PageFormat.PrefetchLeafEntries(page);
                    hits[i] = new LeafHit(page, -3);
                }
            }
        }

        // Step 3: the leaves searched; each found entry's value requested.
        for (int i = 0; i < hits.Length; i++)
        {
            if (hits[i].Index == -2)
            {
                throw _db.TooDeep(ids[i]);
            }

            if (hits[i].Index != -3)
            {
                continue;
            }

            var page = hits[i].Page!;
            int index = PageFormat.LeafLowerBound(page, keys.Slice(i * keyLength, keyLength), out bool exact);
            if (exact)
            {
                PageFormat.PrefetchInlineValue(page, index);
                hits[i] = new LeafHit(page, index);
            }
            else
            {
                hits[i] = new LeafHit(null, -1);
            }
        }
    }

    /// <summary>The value of a hit <see cref="FindMany"/> found (a non-null page); valid until the transaction ends.</summary>
    public ReadOnlySpan<byte> ValueAt(in LeafHit hit) => PageValue(hit.Page!, hit.Index);

    private bool TryGetThroughNodes(ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        var frame = FrameOf(_root!);
        for (int depth = 0; depth < MaxDepth; depth++)
        {
            if (!frame.IsLeaf)
            {
                frame = ChildFrame(frame, FrameBranchSearch(frame, key));
                continue;
            }

            bool exact;
            int index = frame.Node is { } node ? node.LowerBound(key, out exact) : PageFormat.LeafLowerBound(frame.Page!, key, out exact);
            value = exact ? FrameValue(frame, index) : default;
            return exact;
        }

        throw _db.TooDeep(RootPageId);
    }

    public bool TryRootFrame(out CursorFrame frame)
    {
        if (_root is not null)
        {
            frame = FrameOf(_root);
            return true;
        }

        if (RootPageId == 0)
        {
            frame = default;
            return false;
        }

        frame = new CursorFrame { Page = _db.ReadTreePage(RootPageId) };
        return true;
    }

    public CursorFrame ChildFrame(in CursorFrame parent, int index)
    {
        long child;
        if (parent.Node is { } node)
        {
            child = node.Entries[index].PageId;
            if (_nodes is not null && _nodes.TryGetValue(child, out var materialised))
            {
                return FrameOf(materialised);
            }
        }
        else
        {
            child = PageFormat.BranchChild(parent.Page!, index);
        }

        return new CursorFrame { Page = _db.ReadTreePage(child) };
    }

    /// <summary>A page-mode leaf is read like any page: its buffer is in the page format.</summary>
    private static CursorFrame FrameOf(Node node) =>
        node.Page is { } page ? new CursorFrame { Page = page } : new CursorFrame { Node = node };

    public static int FrameBranchSearch(in CursorFrame frame, ReadOnlySpan<byte> key) =>
        frame.Node is { } node ? node.BranchSearch(key) : PageFormat.BranchSearch(frame.Page!, key);

    public static int FrameLowerBound(in CursorFrame frame, ReadOnlySpan<byte> key) =>
        frame.Node is { } node ? node.LowerBound(key, out _) : PageFormat.LeafLowerBound(frame.Page!, key, out _);

    public static ReadOnlySpan<byte> FrameKey(scoped in CursorFrame frame, int index) =>
        frame.Node is { } node ? node.Entries[index].Key.Span : PageFormat.LeafKey(frame.Page!, index);

    public ReadOnlySpan<byte> FrameValue(scoped in CursorFrame frame, int index)
    {
        if (frame.Node is not { } node)
        {
            return PageValue(frame.Page!, index);
        }

        var entry = node.Entries[index];
        return entry.IsOverflow && entry.PageId != 0
            ? _db.ReadOverflowValue(entry.PageId, entry.ValueLength)
            : entry.Value.Span;
    }

    private ReadOnlySpan<byte> PageValue(byte[] page, int index)
    {
        PageFormat.LeafValue(page, index, out int offset, out int length, out bool isOverflow);
        return isOverflow
            ? _db.ReadOverflowValue(BinaryPrimitives.ReadInt64LittleEndian(page.AsSpan(offset)), length)
            : new ReadOnlySpan<byte>(page, offset, length);
    }

    // ---------------------------------------------------------------- changes

    public void Put(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        Node leaf;
        int index;
        bool exact;
        if (_appendLeaf is { Removed: false } last && last.EntryCount > 0 && key.SequenceCompareTo(last.KeyAt(last.EntryCount - 1)) > 0)
        {
            // Append fast path: a key above the last key of the rightmost leaf belongs at its end.
            leaf = last;
            index = last.EntryCount;
            exact = false;
        }
        else
        {
            leaf = LeafNodeFor(key, out index, out exact);
            _appendLeaf = leaf.Rightmost ? leaf : _appendLeaf;
        }

        bool overflow = PageFormat.SlotSizeBytes + LeafEntryHeader.SizeOf + key.Length + value.Length > MaxInlineEntryBytes(_db.PageSizeBytes);
        if (leaf.Page is { } page)
        {
            int dataStart = leaf.DataStart;
            if (!exact && !overflow && LeafPage.TryInsert(page, ref dataStart, index, key, value))
            {
                leaf.DataStart = dataStart;
                leaf.FirstKeyChanged |= index == 0;
                if (index < leaf.OriginalCount)
                {
                    leaf.AppendOnly = false;
                }

                Count++;
                Version++;
                Dirty = true;
                return;
            }

            // A replaced key, an overflow value or a full page: entry mode from here on.
            ToEntries(leaf);
        }

        if (leaf == _appendLeaf && index == leaf.Entries.Count && index == leaf.Entries.Capacity && index < WriterPools.BigListEntries)
        {
            // An append run is growing this leaf: move it to a big pooled list instead of letting
            // the list double its way up (each doubling a fresh large-object-heap array).
            var big = _db.Pools.RentBigList();
            big.AddRange(leaf.Entries);
            _db.Pools.ReturnList(leaf.Entries);
            leaf.Entries = big;
        }

        var bytes = _tx.Store(key, value);
        var entry = new NodeEntry
        {
            Key = bytes[..key.Length],
            Value = bytes[key.Length..],
            ValueLength = value.Length,
            IsOverflow = overflow,
        };
        leaf.HasUnwrittenOverflow |= overflow;

        if (exact)
        {
            FreeOverflowOf(leaf.Entries[index]);
            leaf.Entries[index] = entry;
        }
        else
        {
            leaf.Entries.Insert(index, entry);
            if (index < leaf.OriginalCount)
            {
                leaf.AppendOnly = false;
            }

            Count++;
        }

        Version++;
        Dirty = true;
    }

    public bool Delete(ReadOnlySpan<byte> key)
    {
        if (!TryGet(key, out _))
        {
            return false;
        }

        var leaf = LeafNodeFor(key, out int index, out bool exact);
        if (!exact)
        {
            throw new InvariantViolationException("B+tree: a key found by lookup was not found on its leaf.");
        }

        ToEntries(leaf);
        _deleted = true;
        FreeOverflowOf(leaf.Entries[index]);
        leaf.Entries.RemoveAt(index);
        leaf.Unbalanced = true;
        leaf.AppendOnly = false;
        Count--;
        Version++;
        Dirty = true;
        return true;
    }

    /// <summary>Frees every page of the tree as it was when the transaction began (the bucket is being deleted).</summary>
    public void FreeAll()
    {
        if (OriginalRootPageId != 0)
        {
            FreeSubtree(OriginalRootPageId, 0);
        }

        _overflowFrees = null;
        _detachedPages = null;
        _nodes = null;
        _root = null;
        _appendLeaf = null;
        Version++;
    }

    private void FreeSubtree(long pageId, int depth)
    {
        if (depth >= MaxDepth)
        {
            throw _db.TooDeep(pageId);
        }

        var page = _db.ReadTreePage(pageId);
        _tx.FreePages(pageId, 1);
        int count = PageFormat.Count(page);
        for (int i = 0; i < count; i++)
        {
            if (PageFormat.Kind(page) == PageKind.Branch)
            {
                FreeSubtree(PageFormat.BranchChild(page, i), depth + 1);
                continue;
            }

            PageFormat.LeafValue(page, i, out int offset, out int length, out bool isOverflow);
            if (isOverflow)
            {
                _tx.FreePages(BinaryPrimitives.ReadInt64LittleEndian(page.AsSpan(offset)), PageFormat.RunPages(length, _db.PageSizeBytes));
            }
        }
    }

    private void FreeOverflowOf(in NodeEntry entry)
    {
        if (entry.IsOverflow && entry.PageId != 0)
        {
            (_overflowFrees ??= []).Add((entry.PageId, PageFormat.RunPages(entry.ValueLength, _db.PageSizeBytes)));
        }
    }

    private Node LeafNodeFor(ReadOnlySpan<byte> key, out int index, out bool exact)
    {
        var node = MaterialisedRoot();
        for (int depth = 0; !node.IsLeaf; depth++)
        {
            if (depth >= MaxDepth)
            {
                throw _db.TooDeep(RootPageId);
            }

            node = ChildNode(node, node.BranchSearch(key));
        }

        index = node.LowerBound(key, out exact);
        return node;
    }

    private Node MaterialisedRoot()
    {
        if (_root is null)
        {
            _nodes ??= _db.Pools.RentNodeMap();
            if (RootPageId == 0)
            {
                var buffer = _db.Pools.RentPage();
                LeafPage.InitEmpty(buffer, out int dataStart);
                _root = new Node(parent: null, pageId: 0, key: default, buffer) { DataStart = dataStart };
            }
            else
            {
                _root = Materialise(RootPageId, parent: null, key: default);
            }

            _root.Rightmost = true;
        }

        return _root;
    }

    private Node ChildNode(Node parent, int index)
    {
        var entry = parent.Entries[index];
        if (_nodes!.TryGetValue(entry.PageId, out var node))
        {
            return node;
        }

        node = Materialise(entry.PageId, parent, entry.Key);
        node.Rightmost = parent.Rightmost && index == parent.Entries.Count - 1;
        (parent.Children ??= []).Add(node);
        return node;
    }

    private Node Materialise(long pageId, Node? parent, ReadOnlyMemory<byte> key)
    {
        var page = _db.ReadTreePage(pageId);
        int count = PageFormat.Count(page);
        bool isLeaf = PageFormat.Kind(page) == PageKind.Leaf;
        Node node;
        if (isLeaf)
        {
            // Page mode: a private copy of the page, edited in place.
            var buffer = _db.Pools.RentPage();
            if (page.Length == buffer.Length && LeafPage.TryOpen(page, buffer, out int dataStart))
            {
                node = new Node(parent, pageId, key, buffer) { DataStart = dataStart };
                _nodes![pageId] = node;
                return node;
            }

            _db.Pools.ReturnReplacedPage(buffer);
        }

        var entries = _db.Pools.RentList(count + 1);
        if (isLeaf)
        {
            AddLeafEntries(page, entries);
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                int offset = PageFormat.EntryOffset(page, i);
                int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(offset + 8));
                entries.Add(new NodeEntry
                {
                    Key = page.AsMemory(offset + BranchEntryHeader.SizeOf, keyLength),
                    PageId = PageFormat.BranchChild(page, i),
                });
            }
        }

        node = new Node(isLeaf, parent, pageId, key, entries) { SourcePage = isLeaf ? null : page };
        _nodes![pageId] = node;
        return node;
    }

    private static void AddLeafEntries(byte[] page, List<NodeEntry> entries)
    {
        int count = PageFormat.Count(page);
        for (int i = 0; i < count; i++)
        {
            int offset = PageFormat.EntryOffset(page, i);
            PageFormat.LeafValue(page, i, out int valueOffset, out int valueLength, out bool isOverflow);
            int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(offset));
            entries.Add(new NodeEntry
            {
                Key = page.AsMemory(offset + LeafEntryHeader.SizeOf, keyLength),
                Value = isOverflow ? default : page.AsMemory(valueOffset, valueLength),
                PageId = isOverflow ? BinaryPrimitives.ReadInt64LittleEndian(page.AsSpan(valueOffset)) : 0,
                ValueLength = valueLength,
                IsOverflow = isOverflow,
            });
        }
    }

    /// <summary>
    /// Moves a page-mode leaf to entry mode. Its buffer is no longer edited: the entries slice it
    /// (as do values handed out earlier) until the spill ends, when it goes back to the pool.
    /// </summary>
    private void ToEntries(Node node)
    {
        if (node.Page is not { } page)
        {
            return;
        }

        var entries = _db.Pools.RentList(PageFormat.Count(page) + 1);
        AddLeafEntries(page, entries);
        node.Entries = entries;
        node.Page = null;
        (_detachedPages ??= []).Add(page);
    }

    // ---------------------------------------------------------------- commit: rebalance

    /// <summary>
    /// Packs each run of adjacent leaves that deletes touched into the fewest pages
    /// (<see cref="PackDeletedLeafRuns"/>), then merges nodes that deletes left under a quarter full
    /// into a sibling (bbolt's rule).
    /// </summary>
    public void Rebalance()
    {
        if (_nodes is null || !_deleted)
        {
            // Only deletes leave nodes under-full.
            return;
        }

        _deleted = false;
        PackDeletedLeafRuns();
        foreach (var node in _nodes.Values.ToList())
        {
            if (!node.Removed)
            {
                Rebalance(node);
            }
        }

        if (_root is { Removed: false })
        {
            Rebalance(_root);
        }
    }

    /// <summary>
    /// For every branch, merges each run of two or more adjacent child leaves that deletes touched
    /// into its first leaf when their entries fit in fewer pages than the run has leaves; the spill
    /// then cuts the merged leaf into the fewest pages of even size (<see cref="SplitPoints"/>).
    /// </summary>
    /// <remarks>
    /// Why: a leaf a delete touched is rewritten whole at the spill, however few entries it keeps.
    /// bbolt and LMDB merge a leaf only once it is under a quarter full, so deletes spread thinly
    /// over many leaves (an MVCC compaction removing superseded revisions, which are keyed in
    /// revision order and lie in nearly every leaf) rewrite every leaf at its lower fill and leave
    /// the tree that sparse: ~2 KB written per removed 1 KiB revision, and the next compaction
    /// rewrites the same sparse leaves again (docs/benchmarks.md, "B+tree compaction, session 27").
    /// Leaves of one run are all rewritten anyway, so packing them costs no extra page: the pages
    /// written drop to the bytes the run keeps. Only leaves that deletes touched are packed (they are
    /// in entry mode already); leaves that only had inserts keep their split. A packed page is up to
    /// full, as a split of a node that had inserts in the middle (the even cut) may also be.
    /// Invariant kept: a run's leaves are adjacent children of one parent, in key order, so their
    /// entries concatenated stay sorted (checked at each join).
    /// </remarks>
    private void PackDeletedLeafRuns()
    {
        int capacity = _db.PageSizeBytes - PageHeader.SizeOf;
        List<Node>? run = null;
        foreach (var parent in _nodes!.Values.ToList())
        {
            if (parent.Removed || parent.IsLeaf || parent.Children is not { Count: >= 2 })
            {
                continue;
            }

            run ??= [];
            run.Clear();
            long runBytes = 0;
            for (int i = 0; i <= parent.Entries.Count; i++)
            {
                if (i < parent.Entries.Count
                    && _nodes.TryGetValue(parent.Entries[i].PageId, out var child)
                    && child is { IsLeaf: true, Unbalanced: true, Removed: false, Page: null }
                    && child.Parent == parent)
                {
                    run.Add(child);
                    runBytes += child.SizeBytes - PageHeader.SizeOf;
                    continue;
                }

                // The run (if any) ended before entry i.
                if (run.Count >= 2 && (runBytes + capacity - 1) / capacity < run.Count)
                {
                    i -= run.Count - 1;
                    MergeRun(parent, run);
                }

                run.Clear();
                runBytes = 0;
            }
        }
    }

    /// <summary>Moves the entries of <paramref name="run"/>'s later leaves into its first and removes them from <paramref name="parent"/>.</summary>
    private void MergeRun(Node parent, List<Node> run)
    {
        var target = run[0];
        target.SourcePage = null;
        parent.SourcePage = null;
        for (int r = 1; r < run.Count; r++)
        {
            var source = run[r];
            if (target.Entries.Count > 0 && source.Entries.Count > 0
                && PageFormat.CompareKeys(target.Entries[^1].Key.Span, source.Entries[0].Key.Span) >= 0)
            {
                throw new InvariantViolationException("B+tree: adjacent leaves packed together are out of key order.");
            }

            target.Entries.AddRange(source.Entries);
            target.HasUnwrittenOverflow |= source.HasUnwrittenOverflow;
            target.Rightmost |= source.Rightmost;
            parent.Entries.RemoveAt(parent.IndexOfChild(source.PageId));
            parent.Children!.Remove(source);
            Discard(source);
        }

        target.AppendOnly = false;
        parent.AppendOnly = false;
        parent.Unbalanced = true;
    }

    private void Rebalance(Node node)
    {
        if (!node.Unbalanced)
        {
            return;
        }

        node.Unbalanced = false;
        ToEntries(node);
        int minEntries = node.IsLeaf ? 1 : 2;
        if (node.SizeBytes > _db.PageSizeBytes / 4 && node.Entries.Count >= minEntries)
        {
            return;
        }

        if (node.Parent is not { } parent)
        {
            CollapseRoot(node);
            return;
        }

        if (node.Entries.Count == 0)
        {
            parent.SourcePage = null;
            parent.Entries.RemoveAt(parent.IndexOfChild(node.PageId));
            parent.Children?.Remove(node);
            Discard(node);
            parent.Unbalanced = true;
            parent.AppendOnly = false;
            Rebalance(parent);
            return;
        }

        if (parent.Entries.Count < 2)
        {
            // No sibling to merge with: the parent is itself under-full and merges first.
            parent.Unbalanced = true;
            Rebalance(parent);
            return;
        }

        int index = parent.IndexOfChild(node.PageId);
        Node target;
        Node source;
        if (index == 0)
        {
            target = node;
            source = ChildNode(parent, 1);
        }
        else
        {
            target = ChildNode(parent, index - 1);
            source = node;
        }

        ToEntries(target);
        ToEntries(source);
        target.SourcePage = null;
        parent.SourcePage = null;
        target.Entries.AddRange(source.Entries);
        target.HasUnwrittenOverflow |= source.HasUnwrittenOverflow;
        foreach (var child in source.Children ?? [])
        {
            child.Parent = target;
            (target.Children ??= []).Add(child);
        }

        target.AppendOnly = false;
        parent.Entries.RemoveAt(parent.IndexOfChild(source.PageId));
        parent.Children?.Remove(source);
        Discard(source);
        parent.Unbalanced = true;
        parent.AppendOnly = false;
        Rebalance(parent);
    }

    private void CollapseRoot(Node root)
    {
        while (!root.IsLeaf && root.Entries.Count == 1)
        {
            var child = ChildNode(root, 0);
            ToEntries(child);
            root.SourcePage = child.SourcePage;
            root.IsLeaf = child.IsLeaf;
            root.Entries = child.Entries;
            root.Children = child.Children;
            root.HasUnwrittenOverflow = child.HasUnwrittenOverflow;
            foreach (var grandchild in root.Children ?? [])
            {
                grandchild.Parent = root;
            }

            root.AppendOnly = false;
            Discard(child);
        }

        if (!root.IsLeaf && root.Entries.Count == 0)
        {
            root.IsLeaf = true;
        }
    }

    private void Discard(Node node)
    {
        node.Removed = true;
        _nodes!.Remove(node.PageId);
        _tx.FreePages(node.PageId, 1);
    }

    // ---------------------------------------------------------------- commit: spill

    /// <summary>Writes every materialised node to new pages, splitting the ones too big for a page; sets <see cref="RootPageId"/>.</summary>
    public void Spill()
    {
        if (_overflowFrees is not null)
        {
            foreach (var (page, count) in _overflowFrees)
            {
                _tx.FreePages(page, count);
            }

            _overflowFrees = null;
        }

        if (_root is null)
        {
            return;
        }

        var root = _root;
        var materialised = _nodes!;
        _root = null;
        _nodes = null;
        _appendLeaf = null;
        if (root.IsLeaf && root.EntryCount == 0)
        {
            if (root.PageId != 0)
            {
                _tx.FreePages(root.PageId, 1);
            }

            RootPageId = 0;
        }
        else
        {
            Spill(root);
        }

        // The nodes are dead now (their pages are built); their entry lists serve the next transaction.
        // Each live node owns its list alone: merged-away and collapsed nodes were removed from the map.
        // Page-mode leaves have no list (their buffers are the new pages).
        foreach (var node in materialised.Values)
        {
            if (!node.Removed && node.Page is null)
            {
                _db.Pools.ReturnList(node.Entries);
            }
        }

        _db.Pools.ReturnNodeMap(materialised);

        if (_detachedPages is not null)
        {
            // Every page is built: nothing refers to these buffers any more.
            foreach (var page in _detachedPages)
            {
                _db.Pools.ReturnReplacedPage(page);
            }

            _detachedPages = null;
        }
    }

    private void Spill(Node node)
    {
        if (node.Page is { } leafPage)
        {
            SpillLeafPage(node, leafPage);
            return;
        }

        if (node.Children is { } children)
        {
            foreach (var child in children)
            {
                Spill(child);
            }

            node.Children = null;
        }

        if (node.HasUnwrittenOverflow)
        {
            WriteOverflowValues(node);
        }

        if (node.PageId != 0)
        {
            _tx.FreePages(node.PageId, 1);
            node.PageId = 0;
        }

        var entries = node.Entries;
        var groups = SplitPoints(node, out bool filled);
        List<NodeEntry>? rootEntries = node.Parent is null && groups.Count > 1 ? new(groups.Count) : null;
        long lastPageId = 0;
        for (int g = 0; g < groups.Count; g++)
        {
            var (start, count) = groups[g];
            long pageId = _tx.AllocatePages(1);
            _tx.AddDirtyPage(pageId, BuildPage(node.IsLeaf, CollectionsMarshal.AsSpan(entries).Slice(start, count), pageId));
            if (filled && node.IsLeaf && g < groups.Count - 1)
            {
                // A full page behind an append run: nothing will be inserted into it soon.
                _tx.ColdPages.Add(pageId);
            }

            var firstKey = entries[start].Key;
            node.Parent?.PutChild(g == 0 ? node.Key : firstKey, firstKey, pageId);
            rootEntries?.Add(new NodeEntry { Key = firstKey, PageId = pageId });
            lastPageId = pageId;
        }

        if (node.Parent is not null)
        {
            return;
        }

        if (rootEntries is null)
        {
            RootPageId = lastPageId;
            return;
        }

        var newRoot = new Node(isLeaf: false, parent: null, pageId: 0, key: default, rootEntries) { Rightmost = true };
        Spill(newRoot);
    }

    /// <summary>A page-mode leaf: its buffer, sealed under a new page id, is the new page.</summary>
    private void SpillLeafPage(Node node, byte[] page)
    {
        if (node.PageId != 0)
        {
            _tx.FreePages(node.PageId, 1);
            node.PageId = 0;
        }

        // The page itself is not touched here (it is cold: last changed by the inserts, far back in
        // the transaction). Its header is stamped and its checksum computed right before it is
        // written, which brings it into the CPU cache for the write's copy.
        long pageId = _tx.AllocatePages(1);
        _tx.AddDirtyPage(pageId, page, sealAtWrite: true);
        if (node.Parent is { } parent)
        {
            // The parent's key stays a lower bound of the leaf's keys unless one was inserted in
            // front of them (possible only in the leftmost leaf under that key).
            var firstKey = node.Key;
            if (node.FirstKeyChanged)
            {
                int offset = PageFormat.EntryOffset(page, 0);
                int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(offset));
                firstKey = page.AsMemory(offset + LeafEntryHeader.SizeOf, keyLength);
            }

            parent.PutChild(node.Key, firstKey, pageId);
        }
        else
        {
            RootPageId = pageId;
        }
    }

    /// <summary>
    /// Where to cut a node into pages. A node that only had keys appended at the right edge of the
    /// tree is cut with every page full (sequential inserts fill pages ~100%, like LMDB's append
    /// mode); any other is cut into the fewest pages of even size in bytes.
    /// </summary>
    private List<(int Start, int Count)> SplitPoints(Node node, out bool filled)
    {
        filled = false;
        int capacity = _db.PageSizeBytes - PageHeader.SizeOf;
        var entries = CollectionsMarshal.AsSpan(node.Entries);
        long total = 0;
        foreach (ref readonly var entry in entries)
        {
            total += node.EntrySizeBytes(entry);
        }

        var groups = _splitGroups ??= [];
        groups.Clear();
        if (total <= capacity)
        {
            groups.Add((0, entries.Length));
            return groups;
        }

        filled = node.AppendOnly && node.Rightmost;
        long target = filled ? capacity : total / ((total + capacity - 1) / capacity);
        int groupStart = 0;
        long groupBytes = 0;
        for (int i = 0; i < entries.Length; i++)
        {
            int size = node.EntrySizeBytes(entries[i]);
            if (groupBytes > 0 && (groupBytes + size > capacity || groupBytes >= target))
            {
                groups.Add((groupStart, i - groupStart));
                groupStart = i;
                groupBytes = 0;
            }

            groupBytes += size;
        }

        groups.Add((groupStart, entries.Length - groupStart));
        return groups;
    }

    private void WriteOverflowValues(Node node)
    {
        var entries = CollectionsMarshal.AsSpan(node.Entries);
        for (int i = 0; i < entries.Length; i++)
        {
            ref var entry = ref entries[i];
            if (!entry.IsOverflow || entry.PageId != 0)
            {
                continue;
            }

            int pages = PageFormat.RunPages(entry.ValueLength, _db.PageSizeBytes);
            long pageId = _tx.AllocatePages(pages);
            var run = PageFormat.NewBuffer(pages * _db.PageSizeBytes);
            ref var header = ref PageHeader.Of(run);
            header.Kind = PageKind.Overflow;
            header.PageId = pageId;
            header.Txid = _tx.Id;
            header.OverflowPages = pages - 1;
            entry.Value.Span.CopyTo(run.AsSpan(PageHeader.SizeOf));
            PageFormat.Seal(run);
            _tx.AddDirtyPage(pageId, run);
            entry.PageId = pageId;
            entry.Value = default;
        }
    }

    private byte[] BuildPage(bool isLeaf, ReadOnlySpan<NodeEntry> entries, long pageId)
    {
        // Recycled or uninitialised: every byte is written below (header, slots, entries, zeroed tail).
        var page = _db.Pools.RentPage();
        page.AsSpan(0, PageHeader.SizeOf).Clear();
        ref var header = ref PageHeader.Of(page);
        header.Kind = isLeaf ? PageKind.Leaf : PageKind.Branch;
        header.Count = checked((ushort)entries.Length);
        header.PageId = pageId;
        header.Txid = _tx.Id;
        int slot = PageHeader.SizeOf;
        int data = PageHeader.SizeOf + (entries.Length * PageFormat.SlotSizeBytes);
        var span = page.AsSpan();
        foreach (ref readonly var entry in entries)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(span[slot..], checked((ushort)data));
            slot += PageFormat.SlotSizeBytes;
            var key = entry.Key.Span;
            if (isLeaf)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(span[data..], (ushort)key.Length);
                span[data + 2] = entry.IsOverflow ? LeafEntryHeader.OverflowFlag : (byte)0;
                BinaryPrimitives.WriteInt32LittleEndian(span[(data + 4)..], entry.ValueLength);
                data += LeafEntryHeader.SizeOf;
                key.CopyTo(span[data..]);
                data += key.Length;
                if (entry.IsOverflow)
                {
                    if (entry.PageId == 0)
                    {
                        throw new InvariantViolationException("B+tree: overflow value spilled before its run was written.");
                    }

                    BinaryPrimitives.WriteInt64LittleEndian(span[data..], entry.PageId);
                    data += sizeof(long);
                }
                else
                {
                    entry.Value.Span.CopyTo(span[data..]);
                    data += entry.ValueLength;
                }
            }
            else
            {
                BinaryPrimitives.WriteInt64LittleEndian(span[data..], entry.PageId);
                BinaryPrimitives.WriteUInt16LittleEndian(span[(data + 8)..], (ushort)key.Length);
                data += BranchEntryHeader.SizeOf;
                key.CopyTo(span[data..]);
                data += key.Length;
            }
        }

        if (data > page.Length)
        {
            throw new InvariantViolationException("B+tree: a page was filled past its end.");
        }

        span[data..].Clear();
        PageFormat.Seal(page);
        return page;
    }
}
