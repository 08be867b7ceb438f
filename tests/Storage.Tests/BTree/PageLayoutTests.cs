using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>Pins the on-disk layout documented in docs/btree.md: a change here is a format change.</summary>
public class PageLayoutTests
{
    [Test]
    public void PageHeaderIsThirtyTwoBytesWithFieldsAtDocumentedOffsets()
    {
        Assert.That(PageHeader.SizeOf, Is.EqualTo(32));
        Assert.That(Unsafe.SizeOf<PageHeader>(), Is.EqualTo(PageHeader.SizeOf));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.Checksum)).ToInt32(), Is.EqualTo(0));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.Kind)).ToInt32(), Is.EqualTo(4));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.Flags)).ToInt32(), Is.EqualTo(5));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.Count)).ToInt32(), Is.EqualTo(6));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.PageId)).ToInt32(), Is.EqualTo(8));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.Txid)).ToInt32(), Is.EqualTo(16));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.OverflowPages)).ToInt32(), Is.EqualTo(24));
        Assert.That(Marshal.OffsetOf<PageHeader>(nameof(PageHeader.Reserved)).ToInt32(), Is.EqualTo(28));
    }

    [Test]
    public void MetaBodyIsSixtyFourBytesWithFieldsAtDocumentedOffsets()
    {
        Assert.That(MetaBody.SizeOf, Is.EqualTo(64));
        Assert.That(Unsafe.SizeOf<MetaBody>(), Is.EqualTo(MetaBody.SizeOf));
        Assert.That(MetaBody.EndOffset, Is.EqualTo(96));
        int[] expected = [0, 8, 12, 16, 24, 32, 40, 44, 48, 56];
        string[] fields =
        [
            nameof(MetaBody.Magic), nameof(MetaBody.FormatVersion), nameof(MetaBody.PageSizeBytes), nameof(MetaBody.CatalogRoot),
            nameof(MetaBody.BucketCount), nameof(MetaBody.FreelistPage), nameof(MetaBody.FreelistPageCount), nameof(MetaBody.Reserved),
            nameof(MetaBody.PageCount), nameof(MetaBody.Txid),
        ];
        for (int i = 0; i < fields.Length; i++)
        {
            Assert.That(Marshal.OffsetOf<MetaBody>(fields[i]).ToInt32(), Is.EqualTo(expected[i]), fields[i]);
        }
    }

    [Test]
    public void EntryHeadersHaveDocumentedSizesAndOffsets()
    {
        Assert.That(Unsafe.SizeOf<LeafEntryHeader>(), Is.EqualTo(LeafEntryHeader.SizeOf).And.EqualTo(8));
        Assert.That(Marshal.OffsetOf<LeafEntryHeader>(nameof(LeafEntryHeader.KeyLength)).ToInt32(), Is.EqualTo(0));
        Assert.That(Marshal.OffsetOf<LeafEntryHeader>(nameof(LeafEntryHeader.Flags)).ToInt32(), Is.EqualTo(2));
        Assert.That(Marshal.OffsetOf<LeafEntryHeader>(nameof(LeafEntryHeader.ValueLength)).ToInt32(), Is.EqualTo(4));
        Assert.That(BranchEntryHeader.SizeOf, Is.EqualTo(10));
        Assert.That(Marshal.OffsetOf<BranchEntryHeader>(nameof(BranchEntryHeader.Child)).ToInt32(), Is.EqualTo(0));
        Assert.That(Marshal.OffsetOf<BranchEntryHeader>(nameof(BranchEntryHeader.KeyLength)).ToInt32(), Is.EqualTo(8));
    }

    [Test]
    public void KindsHaveTheirDocumentedValues()
    {
        Assert.That((byte)PageKind.Meta, Is.EqualTo(1));
        Assert.That((byte)PageKind.Branch, Is.EqualTo(2));
        Assert.That((byte)PageKind.Leaf, Is.EqualTo(3));
        Assert.That((byte)PageKind.Overflow, Is.EqualTo(4));
        Assert.That((byte)PageKind.Freelist, Is.EqualTo(5));
    }

    [Test]
    public void MaxKeySizeLimitLeavesRoomForFourEntriesPerPage()
    {
        Assert.That(BTreeOptions.MaxKeySizeLimit(4096), Is.EqualTo(((4096 - 32) / 4) - 18));
        Assert.That(BTreeOptions.MaxKeySizeLimit(1024), Is.EqualTo(((1024 - 32) / 4) - 18));
        Assert.That(new BTreeOptions().MaxKeySizeBytes, Is.EqualTo(511));
        Assert.That(new BTreeOptions { PageSizeBytes = 1024 }.MaxKeySizeBytes, Is.EqualTo(BTreeOptions.MaxKeySizeLimit(1024)));
    }

    /// <summary>
    /// The page checksum is the format of every page: this pins it twice, against known values
    /// computed before it was renamed from its old, wrong name (Crc32C) and against the recipe
    /// docs/btree.md writes down, re-implemented here from the text.
    /// </summary>
    [TestCase(0, 0x8C28B28Au)]
    [TestCase(5, 0xA40797B2u)]
    [TestCase(92, 0xF7231909u)]
    [TestCase(4092, 0x1DFEB66Cu)]
    [TestCase(16381, 0x03F71189u)]
    public void PageChecksumHasItsDocumentedValue(int length, uint expected)
    {
        byte[] data = new byte[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (byte)((i * 31) + 7);
        }

        Assert.That(PageChecksum.Compute(data), Is.EqualTo(DocumentedPageChecksum(data)), "the recipe in docs/btree.md");
        Assert.That(PageChecksum.Compute(data), Is.EqualTo(expected), "the value pinned before the rename");
    }

    [Test]
    public void PageChecksumIsNotAPlainCrc32C()
    {
        byte[] data = new byte[4092];
        data[100] = 1;
        Assert.That(PageChecksum.Compute(data), Is.Not.EqualTo(Crc32C.Append(0, data)));
    }

    /// <summary>docs/btree.md, "Page checksum", step by step.</summary>
    private static uint DocumentedPageChecksum(byte[] d)
    {
        int n = d.Length / 8;
        int t = n / 3;
        ulong W(int i) => BinaryPrimitives.ReadUInt64LittleEndian(d.AsSpan(i * 8));
        uint a = 0xFFFFFFFF;
        uint b = 0;
        uint c = 0;
        for (int i = 0; i < t; i++)
        {
            a = BitOperations.Crc32C(a, W(i));
            b = BitOperations.Crc32C(b, W(t + i));
            c = BitOperations.Crc32C(c, W((2 * t) + i));
        }

        a = BitOperations.Crc32C(a, b);
        a = BitOperations.Crc32C(a, c);
        for (int i = 3 * t; i < n; i++)
        {
            a = BitOperations.Crc32C(a, W(i));
        }

        for (int i = n * 8; i < d.Length; i++)
        {
            a = BitOperations.Crc32C(a, d[i]);
        }

        return ~a;
    }
}
