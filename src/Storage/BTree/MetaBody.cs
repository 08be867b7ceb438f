using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.BTree;

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
