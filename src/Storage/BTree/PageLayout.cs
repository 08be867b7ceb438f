using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>What a page holds; byte 4 of every page. See docs/btree.md.</summary>
internal enum PageKind : byte
{
    Meta = 1,
    Branch = 2,
    Leaf = 3,
    Overflow = 4,
    Freelist = 5,
}

/// <summary>
/// The 32-byte header at the start of every page (and of every multi-page run: overflow values
/// and the freelist). All integers are little-endian.
/// </summary>
/// <remarks>
/// The checksum is CRC-32C over bytes [4, end of run) for branch, leaf, overflow and freelist
/// pages, and over bytes [4, <see cref="MetaBody.EndOffset"/>) for meta pages (so that meta page 0
/// can be verified before the page size is known).
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = SizeOf)]
internal struct PageHeader
{
    public const int SizeOf = 32;

    [FieldOffset(0)] public uint Checksum;
    [FieldOffset(4)] public PageKind Kind;
    [FieldOffset(5)] public byte Flags;
    /// <summary>Number of entries on a branch or leaf page.</summary>
    [FieldOffset(6)] public ushort Count;
    /// <summary>The page's own id: a page read from the wrong place is caught even with a good checksum.</summary>
    [FieldOffset(8)] public long PageId;
    /// <summary>The transaction that wrote the page.</summary>
    [FieldOffset(16)] public long Txid;
    /// <summary>Pages that follow this one in the same run (0 for a single page).</summary>
    [FieldOffset(24)] public int OverflowPages;
    [FieldOffset(28)] public int Reserved;

    public static ref PageHeader Of(Span<byte> page) => ref MemoryMarshal.AsRef<PageHeader>(page);

    public static PageHeader Read(ReadOnlySpan<byte> page) => MemoryMarshal.Read<PageHeader>(page);
}

/// <summary>The body of a meta page (pages 0 and 1), right after the <see cref="PageHeader"/>.</summary>
[StructLayout(LayoutKind.Explicit, Size = SizeOf)]
internal struct MetaBody
{
    public const int SizeOf = 64;
    public const int EndOffset = PageHeader.SizeOf + SizeOf;
    public const ulong ExpectedMagic = 0x3145455254425245; // "ERBTREE1" little-endian
    public const uint CurrentFormatVersion = 1;

    [FieldOffset(0)] public ulong Magic;
    [FieldOffset(8)] public uint FormatVersion;
    [FieldOffset(12)] public int PageSizeBytes;
    /// <summary>Root page of the catalog tree (bucket name to bucket record); 0 when there are no buckets.</summary>
    [FieldOffset(16)] public long CatalogRoot;
    [FieldOffset(24)] public long BucketCount;
    /// <summary>First page of the freelist run; 0 when none has been written.</summary>
    [FieldOffset(32)] public long FreelistPage;
    /// <summary>Pages in the freelist run.</summary>
    [FieldOffset(40)] public int FreelistPageCount;
    [FieldOffset(44)] public int Reserved;
    /// <summary>Pages in use by the file: every page id is below this (the high-water mark).</summary>
    [FieldOffset(48)] public long PageCount;
    [FieldOffset(56)] public long Txid;
}

/// <summary>Header of a leaf entry: key length, flags, value length; then the key, then the value
/// (inline) or the first page id of its overflow run (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = SizeOf)]
internal struct LeafEntryHeader
{
    public const int SizeOf = 8;
    public const byte OverflowFlag = 1;

    [FieldOffset(0)] public ushort KeyLength;
    [FieldOffset(2)] public byte Flags;
    [FieldOffset(3)] public byte Reserved;
    [FieldOffset(4)] public int ValueLength;
}

/// <summary>Header of a branch entry: child page id and key length; then the key, a lower bound of
/// every key in the child's subtree.</summary>
[StructLayout(LayoutKind.Explicit, Size = SizeOf)]
internal struct BranchEntryHeader
{
    public const int SizeOf = 10;

    [FieldOffset(0)] public long Child;
    [FieldOffset(8)] public ushort KeyLength;
}

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
    public static void Seal(Span<byte> run) => BinaryPrimitives.WriteUInt32LittleEndian(run, Crc32C.Compute(run[4..]));

    public static bool IsSealed(ReadOnlySpan<byte> run) => BinaryPrimitives.ReadUInt32LittleEndian(run) == Crc32C.Compute(run[4..]);
}

/// <summary>CRC-32C (Castagnoli) with the hardware instruction where the CPU has one.</summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        // Three independent chains hide the instruction's latency; they are combined by feeding
        // the second and third chains' results into the first, which keeps it a checksum of every byte.
        int third = words.Length / 3;
        uint crc1 = 0;
        uint crc2 = 0;
        for (int i = 0; i < third; i++)
        {
            crc = BitOperations.Crc32C(crc, words[i]);
            crc1 = BitOperations.Crc32C(crc1, words[third + i]);
            crc2 = BitOperations.Crc32C(crc2, words[(2 * third) + i]);
        }

        crc = BitOperations.Crc32C(crc, crc1);
        crc = BitOperations.Crc32C(crc, crc2);
        for (int i = 3 * third; i < words.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, words[i]);
        }

        for (int i = words.Length * sizeof(ulong); i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }

        return ~crc;
    }
}
