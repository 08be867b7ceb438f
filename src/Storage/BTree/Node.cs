namespace EmbeddedRaft.Storage.BTree;

/// <summary>One entry of a <see cref="Node"/>.</summary>
internal struct NodeEntry
{
    /// <summary>The key; for a branch, a lower bound of every key in the child's subtree.</summary>
    public ReadOnlyMemory<byte> Key;

    /// <summary>An inline value, or an overflow value not yet written to its run (then <see cref="PageId"/> is 0).</summary>
    public ReadOnlyMemory<byte> Value;

    /// <summary>Branch: the child page. Leaf: the first page of the value's overflow run, 0 when not written yet.</summary>
    public long PageId;

    public int ValueLength;

    public bool IsOverflow;
}

/// <summary>
/// A branch or leaf page materialised for change inside a write transaction (the bbolt model):
/// entries are edited in memory and written to freshly allocated pages at commit ("spill"), never
/// over the page they came from. Entry keys and values slice the immutable cached page buffers,
/// so materialising a page copies no key or value bytes.
/// </summary>
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

    public bool IsLeaf { get; set; }

    public Node? Parent { get; set; }

    /// <summary>The page this node was read from (freed at commit); 0 for a node that never had one.</summary>
    public long PageId { get; set; }

    /// <summary>The key under which the parent referred to this node when it was materialised.</summary>
    public ReadOnlyMemory<byte> Key { get; }

    public List<NodeEntry> Entries { get; set; }

    /// <summary>Materialised children (branch nodes only); null until the first one.</summary>
    public List<Node>? Children { get; set; }

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
        InvariantViolationException.Check(!exact, "B+tree: a split produced a separator key already in the parent.");
        if (index < OriginalCount)
        {
            AppendOnly = false;
        }

        Entries.Insert(index, new NodeEntry { Key = newKey, PageId = pageId });
    }
}
