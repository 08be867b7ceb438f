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
}
