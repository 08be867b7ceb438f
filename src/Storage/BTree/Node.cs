namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// A branch or leaf page materialised for change inside a write transaction: written to a freshly
/// allocated page at commit ("spill"), never over the page it came from.
/// </summary>
/// <remarks>
/// Two representations. A leaf starts in <em>page mode</em> (LMDB's model): <see cref="Page"/> is a
/// private page-sized copy of the committed page, in the on-disk leaf format with its entry bytes
/// moved to the end of the page, and new keys are inserted in place (the slot array grows up into
/// the zero gap, entry bytes are added below the lowest entry). Entry bytes already in the buffer
/// never move or change while it is in page mode, so values handed out stay valid. At commit the
/// buffer itself becomes the new page. Anything page mode does not do in place (replacing or
/// deleting a key, an overflow value, an entry that does not fit, merging) first converts the node
/// to <em>entry mode</em> (the bbolt model, and always the mode of branches): <see cref="Entries"/>
/// is a list edited in memory and packed into pages at commit, split as needed. Entry keys and
/// values slice immutable buffers (cached pages, the detached page-mode buffer, the transaction's
/// arena), so materialising copies no key or value bytes.
/// </remarks>
internal sealed class Node
{
    public Node(bool isLeaf, Node? parent, long pageId, ReadOnlyMemory<byte> key, List<NodeEntry> entries)
    {
        IsLeaf = isLeaf;
        Parent = parent;
        PageId = pageId;
        Key = key;
        Entries = entries;
        OriginalCount = entries.Count;
    }

    /// <summary>A leaf in page mode over <paramref name="page"/> (see <see cref="LeafPage"/>).</summary>
    public Node(Node? parent, long pageId, ReadOnlyMemory<byte> key, byte[] page)
    {
        IsLeaf = true;
        Parent = parent;
        PageId = pageId;
        Key = key;
        Entries = null!;
        Page = page;
        OriginalCount = PageFormat.Count(page);
    }

    /// <summary>Page mode: the dirty leaf buffer (then <see cref="Entries"/> is null); null in entry mode.</summary>
    public byte[]? Page { get; set; }

    /// <summary>
    /// Branch: the committed page the entries were read from, while they are unchanged (cleared by
    /// every change); descents search it in place, which touches fewer cache lines than the entry list.
    /// </summary>
    public byte[]? SourcePage { get; set; }

    /// <summary>Page mode: offset of the lowest entry's bytes (see <see cref="LeafPage"/>).</summary>
    public int DataStart { get; set; }

    /// <summary>Entries in either mode.</summary>
    public int EntryCount => Page is { } page ? PageFormat.Count(page) : Entries.Count;

    /// <summary>The key of entry <paramref name="index"/> in either mode.</summary>
    public ReadOnlySpan<byte> KeyAt(int index) => Page is { } page ? PageFormat.LeafKey(page, index) : Entries[index].Key.Span;

    public bool IsLeaf { get; set; }

    public Node? Parent { get; set; }

    /// <summary>The page this node was read from (freed at commit); 0 for a node that never had one.</summary>
    public long PageId { get; set; }

    /// <summary>The key under which the parent referred to this node when it was materialised.</summary>
    public ReadOnlyMemory<byte> Key { get; }

    public List<NodeEntry> Entries { get; set; }

    /// <summary>Materialised children (branch nodes only); null until the first one.</summary>
    public List<Node>? Children { get; set; }

    /// <summary>Page mode: a key was inserted in front of every other (the parent's key may no longer be a lower bound).</summary>
    public bool FirstKeyChanged { get; set; }

    /// <summary>True when a Put gave this leaf an overflow value that has no run yet.</summary>
    public bool HasUnwrittenOverflow { get; set; }

    /// <summary>Entries the page had when materialised; inserts at or after this index are appends.</summary>
    public int OriginalCount { get; }

    /// <summary>True while every change was an insert after the original entries: an append run.</summary>
    public bool AppendOnly { get; set; } = true;

    /// <summary>True when this is the last node of its level (every ancestor link is the last entry).</summary>
    public bool Rightmost { get; set; }

    /// <summary>Set by deletes: the node may need merging at commit.</summary>
    public bool Unbalanced { get; set; }

    /// <summary>Merged away or deleted during rebalancing.</summary>
    public bool Removed { get; set; }

    public int SizeBytes
    {
        get
        {
            int total = PageHeader.SizeOf;
            foreach (ref readonly var entry in System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Entries))
            {
                total += EntrySizeBytes(entry);
            }

            return total;
        }
    }

    /// <summary>Bytes an entry takes on a page, its slot included.</summary>
    public int EntrySizeBytes(in NodeEntry entry) => IsLeaf
        ? PageFormat.SlotSizeBytes + LeafEntryHeader.SizeOf + entry.Key.Length + (entry.IsOverflow ? sizeof(long) : entry.ValueLength)
        : PageFormat.SlotSizeBytes + BranchEntryHeader.SizeOf + entry.Key.Length;

    /// <summary>Index of the first entry whose key is &gt;= <paramref name="key"/> (Count when none).</summary>
    public int LowerBound(ReadOnlySpan<byte> key, out bool exact)
    {
        if (Page is { } page)
        {
            return PageFormat.LeafLowerBound(page, key, out exact);
        }

        var entries = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Entries);
        int low = 0;
        int high = entries.Length - 1;
        while (low <= high)
        {
            int middle = (low + high) >>> 1;
            int c = PageFormat.CompareKeys(entries[middle].Key.Span, key);
            if (c < 0)
            {
                low = middle + 1;
            }
            else if (c > 0)
            {
                high = middle - 1;
            }
            else
            {
                exact = true;
                return middle;
            }
        }

        exact = false;
        return low;
    }

    /// <summary>Index of the last entry whose key is &lt;= <paramref name="key"/>, or 0 when none is.</summary>
    public int BranchSearch(ReadOnlySpan<byte> key)
    {
        if (SourcePage is { } source)
        {
            return PageFormat.BranchSearch(source, key);
        }

        int index = LowerBound(key, out bool exact);
        return exact ? index : Math.Max(0, index - 1);
    }

    public int IndexOfChild(long pageId)
    {
        var entries = Entries;
        for (int i = 0; i < entries.Count; i++)
        {
            if (entries[i].PageId == pageId)
            {
                return i;
            }
        }

        throw new InvariantViolationException($"B+tree: branch node has no entry for child page {pageId}.");
    }

    /// <summary>
    /// Points the entry found under <paramref name="oldKey"/> at <paramref name="pageId"/> with
    /// <paramref name="newKey"/>, or inserts a new entry when there is none (a split's new page).
    /// </summary>
    public void PutChild(ReadOnlyMemory<byte> oldKey, ReadOnlyMemory<byte> newKey, long pageId)
    {
        SourcePage = null;
        int index = LowerBound(oldKey.Span, out bool exact);
        if (exact)
        {
            var entry = Entries[index];
            entry.Key = newKey;
            entry.PageId = pageId;
            Entries[index] = entry;
            return;
        }

        index = LowerBound(newKey.Span, out exact);
        if (exact)
        {
            throw new InvariantViolationException("B+tree: a split produced a separator key already in the parent.");
        }

        if (index < OriginalCount)
        {
            AppendOnly = false;
        }

        Entries.Insert(index, new NodeEntry { Key = newKey, PageId = pageId });
    }
}
