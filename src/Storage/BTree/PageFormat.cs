using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>Reading branch and leaf pages in place: a slot array of ushort entry offsets follows the header.</summary>
internal static class PageFormat
{
    public const int SlotSizeBytes = 2;
    public const int FreelistCountSizeBytes = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Count(byte[] page) => Unsafe.ReadUnaligned<ushort>(ref page[6]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static PageKind Kind(byte[] page) => (PageKind)page[4];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int EntryOffset(byte[] page, int index) => Unsafe.ReadUnaligned<ushort>(ref page[PageHeader.SizeOf + (index * SlotSizeBytes)]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ReadOnlySpan<byte> LeafKey(byte[] page, int index)
    {
        int offset = EntryOffset(page, index);
        int keyLength = Unsafe.ReadUnaligned<ushort>(ref page[offset]);
        return new ReadOnlySpan<byte>(page, offset + LeafEntryHeader.SizeOf, keyLength);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ReadOnlySpan<byte> BranchKey(byte[] page, int index)
    {
        int offset = EntryOffset(page, index);
        int keyLength = Unsafe.ReadUnaligned<ushort>(ref page[offset + 8]);
        return new ReadOnlySpan<byte>(page, offset + BranchEntryHeader.SizeOf, keyLength);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static long BranchChild(byte[] page, int index) => Unsafe.ReadUnaligned<long>(ref page[EntryOffset(page, index)]);

    /// <summary>The leaf entry at <paramref name="index"/>: inline value bytes, or (overflow) its run's page id and length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LeafValue(byte[] page, int index, out int valueOffset, out int valueLength, out bool isOverflow)
    {
        int offset = EntryOffset(page, index);
        int keyLength = Unsafe.ReadUnaligned<ushort>(ref page[offset]);
        isOverflow = (page[offset + 2] & LeafEntryHeader.OverflowFlag) != 0;
        valueLength = Unsafe.ReadUnaligned<int>(ref page[offset + 4]);
        valueOffset = offset + LeafEntryHeader.SizeOf + keyLength;
    }

    /// <summary>
    /// Byte-wise comparison. Keys that differ in their first eight bytes (sequence numbers,
    /// revisions, most random keys) are ordered by one 64-bit big-endian comparison.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CompareKeys(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        if (left.Length >= sizeof(ulong) && right.Length >= sizeof(ulong))
        {
            ulong a = BinaryPrimitives.ReadUInt64BigEndian(left);
            ulong b = BinaryPrimitives.ReadUInt64BigEndian(right);
            if (a != b)
            {
                return a < b ? -1 : 1;
            }
        }

        return left.SequenceCompareTo(right);
    }

    /// <summary>Index of the first entry whose key is &gt;= <paramref name="key"/> (Count when none).</summary>
    public static int LeafLowerBound(byte[] page, ReadOnlySpan<byte> key, out bool exact)
    {
        int low = 0;
        int high = Count(page) - 1;
        while (low <= high)
        {
            int middle = (low + high) >>> 1;
            int c = CompareKeys(LeafKey(page, middle), key);
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

    /// <summary>Leaves with at most this many entries have every entry prefetched before the search (see <see cref="LeafLowerBoundPrefetched"/>).</summary>
    public const int PrefetchedLeafEntries = 32;

    /// <summary>
    /// <see cref="LeafLowerBound"/> for a point lookup in a page that is likely not in the CPU's cache
    /// (a random read): when the leaf holds few entries (large values), every entry's first cache
    /// line is requested before the binary search, so the search's probes wait for one memory
    /// round trip, not one each (a 16 KiB leaf of 1 KiB values: ~14 entries, four probes, four
    /// dependent misses). Same result as <see cref="LeafLowerBound"/>; prefetches never fault.
    /// </summary>
    public static int LeafLowerBoundPrefetched(byte[] page, ReadOnlySpan<byte> key, out bool exact)
    {
        int count = Count(page);
        if (count <= PrefetchedLeafEntries && Sse.IsSupported)
        {
            PrefetchEntries(page, count);
        }

        return LeafLowerBound(page, key, out exact);
    }

    /// <summary>
    /// Requests a page's first two cache lines (its header, and the slots of a leaf of large
    /// values) before the page is read: <see cref="Tree.FindMany"/> does this for every lookup of a
    /// level before it searches any. A hint only: it never faults.
    /// </summary>
    public static unsafe void PrefetchHead(byte[] page)
    {
        if (Sse.IsSupported && page.Length >= 128)
        {
            fixed (byte* start = page)
            {
                Sse.Prefetch0(start);
                Sse.Prefetch0(start + 64);
            }
        }
    }

    /// <summary>Requests every entry's first line of a leaf with at most <see cref="PrefetchedLeafEntries"/> entries (as <see cref="LeafLowerBoundPrefetched"/> does), without searching it.</summary>
    public static void PrefetchLeafEntries(byte[] page)
    {
        int count = Count(page);
        if (count <= PrefetchedLeafEntries && Sse.IsSupported)
        {
            PrefetchEntries(page, count);
        }
    }

    /// <summary>Requests the lines of a found leaf entry's inline value (up to 4 KiB; an overflow value's run is read later, as usual).</summary>
    public static unsafe void PrefetchInlineValue(byte[] page, int index)
    {
        if (!Sse.IsSupported)
        {
            return;
        }

        LeafValue(page, index, out int offset, out int length, out bool isOverflow);
        int end = isOverflow ? offset : Math.Min(Math.Min(page.Length, offset + length), offset + 4096);
        fixed (byte* start = page)
        {
            // An offset past the page (a corrupt entry) ends the loop at once; the read checks bounds.
            for (int at = offset; at < end; at += 64)
            {
                Sse.Prefetch0(start + at);
            }
        }
    }

    private static unsafe void PrefetchEntries(byte[] page, int count)
    {
        fixed (byte* start = page)
        {
            for (int i = 0; i < count; i++)
            {
                // An offset past the page (a corrupt slot) is only a wasted hint; the search checks bounds.
                Sse.Prefetch0(start + EntryOffset(page, i));
            }
        }
    }

    /// <summary>Index of the last entry whose key is &lt;= <paramref name="key"/>, or 0 when none is.</summary>
    public static int BranchSearch(byte[] page, ReadOnlySpan<byte> key)
    {
        int low = 0;
        int high = Count(page) - 1;
        while (low <= high)
        {
            int middle = (low + high) >>> 1;
            int c = CompareKeys(BranchKey(page, middle), key);
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
                return middle;
            }
        }

        return low == 0 ? 0 : low - 1;
    }

    /// <summary>
    /// A zeroed buffer for a page or run. Pinned-object-heap buffers are never moved by the GC, so
    /// the page cache's long-lived buffers cost nothing to keep through young-generation collections.
    /// </summary>
    public static byte[] NewBuffer(int length) => GC.AllocateArray<byte>(length, pinned: true);

    /// <summary>Pages needed by a run that holds <paramref name="payloadBytes"/> bytes after its header.</summary>
    public static int RunPages(long payloadBytes, int pageSize) => checked((int)((PageHeader.SizeOf + payloadBytes + pageSize - 1) / pageSize));

    /// <summary>Writes the checksum of a branch, leaf, overflow or freelist run into its header.</summary>
    public static void Seal(Span<byte> run) => BinaryPrimitives.WriteUInt32LittleEndian(run, PageChecksum.Compute(run[4..]));

    public static bool IsSealed(ReadOnlySpan<byte> run) => BinaryPrimitives.ReadUInt32LittleEndian(run) == PageChecksum.Compute(run[4..]);
}
