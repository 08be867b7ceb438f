using System.Buffers.Binary;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// How one bucket's tree sits on its pages as of a read transaction: leaf and branch pages and the
/// bytes the leaves use (header, slots and entries; an overflow value counts its 8-byte page id, not
/// its run). For tests and probes that ask how full a tree's leaves are, e.g. after deletes
/// (docs/benchmarks.md, "B+tree compaction, session 27").
/// </summary>
internal sealed record BucketShape
{
    public required long LeafPages { get; init; }

    public required long BranchPages { get; init; }

    public required long Entries { get; init; }

    /// <summary>Bytes used on the leaf pages, headers and slots included.</summary>
    public required long LeafUsedBytes { get; init; }

    /// <summary>Leaf pages holding at most half a page of bytes.</summary>
    public required long LeavesAtMostHalfFull { get; init; }

    public required int PageSizeBytes { get; init; }

    /// <summary>Mean fill of the leaf pages, 0 to 1 (0 for an empty tree).</summary>
    public double LeafFill => LeafPages == 0 ? 0 : (double)LeafUsedBytes / (LeafPages * (long)PageSizeBytes);

    /// <summary>Walks <paramref name="bucket"/>'s tree in <paramref name="tx"/>'s snapshot, through the page cache.</summary>
    /// <exception cref="InvalidOperationException">The bucket has uncommitted changes in <paramref name="tx"/>.</exception>
    public static BucketShape Of(Transaction tx, Bucket bucket)
    {
        var tree = bucket.Tree;
        if (!tree.CanFindMany)
        {
            throw new InvalidOperationException("BucketShape reads committed pages only; this bucket has changes of its own.");
        }

        var db = tx.Database;
        long leaves = 0;
        long branches = 0;
        long entries = 0;
        long used = 0;
        long halfFull = 0;
        if (tree.RootPageId != 0)
        {
            var pending = new Stack<(long Page, int Depth)>();
            pending.Push((tree.RootPageId, 0));
            while (pending.TryPop(out var next))
            {
                if (next.Depth >= Tree.MaxDepth)
                {
                    throw db.TooDeep(next.Page);
                }

                var page = db.ReadTreePage(next.Page);
                int count = PageFormat.Count(page);
                if (PageFormat.Kind(page) == PageKind.Branch)
                {
                    branches++;
                    for (int i = 0; i < count; i++)
                    {
                        pending.Push((PageFormat.BranchChild(page, i), next.Depth + 1));
                    }

                    continue;
                }

                leaves++;
                entries += count;
                long bytes = PageHeader.SizeOf;
                for (int i = 0; i < count; i++)
                {
                    int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(PageFormat.EntryOffset(page, i)));
                    PageFormat.LeafValue(page, i, out _, out int valueLength, out bool isOverflow);
                    bytes += PageFormat.SlotSizeBytes + LeafEntryHeader.SizeOf + keyLength + (isOverflow ? sizeof(long) : valueLength);
                }

                used += bytes;
                halfFull += bytes <= db.PageSizeBytes / 2 ? 1 : 0;
            }
        }

        return new BucketShape
        {
            LeafPages = leaves,
            BranchPages = branches,
            Entries = entries,
            LeafUsedBytes = used,
            LeavesAtMostHalfFull = halfFull,
            PageSizeBytes = db.PageSizeBytes,
        };
    }
}
