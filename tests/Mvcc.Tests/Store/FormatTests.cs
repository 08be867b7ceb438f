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
    public void AVersion1StoredValueIsKindCreateVersionLeaseKeyLengthKeyValue()
    {
        var bytes = StoredValue.EncodeVersion1(StoredValue.PutKind, [0x6B], [0x76, 0x77], createRevision: 2, version: 3, lease: 4);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo(
            "01" + "0200000000000000" + "0300000000000000" + "0400000000000000" + "01000000" + "6B" + "7677"));
        Assert.That(StoredValue.Version1HeaderSizeBytes, Is.EqualTo(29));
        Assert.That((StoredValue.CreateRevisionOffset, StoredValue.VersionOffset, StoredValue.LeaseOffset, StoredValue.KeyLengthOffset), Is.EqualTo((1, 9, 17, 25)));
        Assert.That(Convert.ToHexString(StoredValue.EncodeVersion1(StoredValue.TombstoneKind, [0x6B], default, 0, 0, 0)), Is.EqualTo("02" + new string('0', 48) + "01000000" + "6B"));
        Assert.That(StoredValue.TryDecode(bytes, 9, tombstone: false, out var decoded), Is.True);
        Assert.That(decoded, Is.EqualTo(new StoredValue.Decoded(2, 3, 4, 1, 29)));
        Assert.That(StoredValue.TryDecode(bytes, 9, tombstone: true, out _), Is.False, "the kind byte must match the key's mark");
    }

    [Test]
    public void AVersion2StoredValueIsKindThenVarintsOfCreateDistanceVersionLeaseKeyLength()
    {
        // A key's first put: its create revision is its mod revision, distance 0. Five bytes of header.
        Assert.That(Convert.ToHexString(StoredValue.EncodePut(7, [0x6B], [0x76, 0x77], createRevision: 7, version: 1, lease: 0)), Is.EqualTo("03" + "00" + "01" + "00" + "01" + "6B" + "7677"));

        // Created at 2, put again at 7 (distance 5), version 300 (two bytes, low seven bits first), lease 4.
        var bytes = StoredValue.EncodePut(7, [0x6B], [0x76, 0x77], createRevision: 2, version: 300, lease: 4);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo("03" + "05" + "AC02" + "04" + "01" + "6B" + "7677"));
        Assert.That(StoredValue.TryDecode(bytes, 7, tombstone: false, out var decoded), Is.True);
        Assert.That(decoded, Is.EqualTo(new StoredValue.Decoded(2, 300, 4, 1, 6)));
        Assert.That(StoredValue.TryDecode(bytes, 7, tombstone: true, out _), Is.False, "the kind byte must match the key's mark");

        Assert.That(Convert.ToHexString(StoredValue.EncodeTombstone([0x6B])), Is.EqualTo("04" + "01" + "6B"));
        Assert.That(StoredValue.TryDecode(StoredValue.EncodeTombstone([0x6B]), 9, tombstone: true, out var deleted), Is.True);
        Assert.That(deleted, Is.EqualTo(new StoredValue.Decoded(0, 0, 0, 1, 2)));
    }

    [Test]
    public void APutWhoseVersion2HeaderWouldBeLongerThan29BytesIsWrittenInVersion1()
    {
        // Distance 2^63-2 (9 bytes), version 2^62 (9 bytes), a negative lease (10 bytes): 30 bytes in version 2.
        var bytes = StoredValue.EncodePut(long.MaxValue, [0x6B], [0x76], createRevision: 1, version: 1L << 62, lease: -5);
        Assert.That(bytes[0], Is.EqualTo(StoredValue.PutKind));
        Assert.That(bytes, Has.Length.EqualTo(29 + 2));
        Assert.That(StoredValue.TryDecode(bytes, long.MaxValue, tombstone: false, out var decoded), Is.True);
        Assert.That(decoded, Is.EqualTo(new StoredValue.Decoded(1, 1L << 62, -5, 1, 29)));

        // One field smaller and it fits in version 2 again.
        Assert.That(StoredValue.EncodePut(long.MaxValue, [0x6B], [0x76], createRevision: 1, version: 1, lease: -5)[0], Is.EqualTo(StoredValue.CompactPutKind));
    }

    private static IEnumerable<int> Seeds() => EmbeddedRaft.TestSupport.TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public void AnyPutDecodesToItsFieldsWithAHeaderOfAtMost29Bytes(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        for (int i = 0; i < 10_000; i++)
        {
            long main = Field(random, 1);
            long create = main - (Field(random, 0) % main);
            long version = Field(random, 1);
            long lease = random.Next(4) == 0 ? -Field(random, 1) : Field(random, 0);
            var key = new byte[1 + random.Next(200)];
            var value = new byte[random.Next(300)];
            random.NextBytes(key);
            random.NextBytes(value);
            var bytes = StoredValue.EncodePut(main, key, value, create, version, lease);
            Assert.That(bytes.Length - key.Length - value.Length, Is.LessThanOrEqualTo(StoredValue.MaxHeaderSizeBytes), $"seed {seed} put {i}");
            Assert.That(StoredValue.TryDecode(bytes, main, tombstone: false, out var decoded), Is.True, $"seed {seed} put {i}");
            Assert.That((decoded.CreateRevision, decoded.Version, decoded.Lease), Is.EqualTo((create, version, lease)), $"seed {seed} put {i}");
            Assert.That(StoredValue.KeyOf(bytes, decoded).ToArray(), Is.EqualTo(key), $"seed {seed} put {i}");
            Assert.That(StoredValue.ValueOf(bytes, decoded).ToArray(), Is.EqualTo(value), $"seed {seed} put {i}");
        }
    }

    /// <summary>A positive field of any size from <paramref name="min"/> up, small ones (one varint byte) most often.</summary>
    private static long Field(Random random, long min) => random.Next(3) switch
    {
        0 => min + random.Next(128),
        1 => min + random.NextInt64(1L << (7 * random.Next(1, 9))),
        _ => random.NextInt64(min, long.MaxValue),
    };
}
