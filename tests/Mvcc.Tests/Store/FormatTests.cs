using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>The on-disk encodings, pinned byte by byte as docs/formats.md ("MVCC store") describes them.</summary>
public sealed class FormatTests
{
    [Test]
    public void ARevisionKeyIsMainUnderscoreSubBigEndianWithATombstoneMark()
    {
        Assert.That(Convert.ToHexString(RevisionKey.Encode(new Revision(0x0102, 3), tombstone: false)), Is.EqualTo("0000000000000102" + "5F" + "0000000000000003"));
        Assert.That(Convert.ToHexString(RevisionKey.Encode(new Revision(5, 0), tombstone: true)), Is.EqualTo("0000000000000005" + "5F" + "0000000000000000" + "74"));
        Assert.That(RevisionKey.TryDecode(RevisionKey.Encode(new Revision(7, 2), tombstone: true), out var revision, out bool tombstone), Is.True);
        Assert.That((revision, tombstone), Is.EqualTo((new Revision(7, 2), true)));
        Assert.That(RevisionKey.TryDecode([1, 2, 3], out _, out _), Is.False);

        // Byte order is revision order, so every write appends at the right edge of the B+tree.
        Assert.That(RevisionKey.Encode(new Revision(1, 300), false).AsSpan().SequenceCompareTo(RevisionKey.Encode(new Revision(2, 0), false)), Is.LessThan(0));
    }

    [Test]
    public void AStoredValueIsKindCreateVersionLeaseKeyLengthKeyValue()
    {
        var bytes = StoredValue.EncodePut([0x6B], [0x76, 0x77], createRevision: 2, version: 3, lease: 4);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo(
            "01" + "0200000000000000" + "0300000000000000" + "0400000000000000" + "01000000" + "6B" + "7677"));
        Assert.That(StoredValue.HeaderSizeBytes, Is.EqualTo(29));
        Assert.That((StoredValue.CreateRevisionOffset, StoredValue.VersionOffset, StoredValue.LeaseOffset, StoredValue.KeyLengthOffset), Is.EqualTo((1, 9, 17, 25)));
        Assert.That(Convert.ToHexString(StoredValue.EncodeTombstone([0x6B])), Is.EqualTo("02" + new string('0', 48) + "01000000" + "6B"));
        Assert.That(StoredValue.TryDecode(bytes, tombstone: true, out _), Is.False, "the kind byte must match the key's mark");
    }
}
