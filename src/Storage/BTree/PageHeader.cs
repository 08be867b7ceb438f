using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// The 32-byte header at the start of every page (and of every multi-page run: overflow values
/// and the freelist). All integers are little-endian.
/// </summary>
/// <remarks>
/// The checksum (<see cref="PageChecksum"/>, not a plain CRC-32C) is computed over bytes [4, end of run) for branch, leaf, overflow and freelist
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
