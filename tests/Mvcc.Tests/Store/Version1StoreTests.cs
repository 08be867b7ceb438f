using System.Buffers.Binary;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Images.ImageTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// A store written in format version 1 (every revision with the 29-byte header) opens, reads,
/// hashes, takes writes (in version 2) and compacts as the same history written in version 2 does,
/// and its images restore either way (docs/formats.md, "MVCC store").
/// </summary>
public sealed class Version1StoreTests
{
    private const string Old = "/data/v1";

    private const string New = "/data/v2";

    private static IEnumerable<int> Seeds() => EmbeddedRaft.TestSupport.TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public async Task AVersion1StoreReadsHashesTakesWritesAndCompactsAsTheSameHistoryInVersion2(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);
        var (oldRandom, newRandom) = (new Random(seed), new Random(seed));
        ulong next;
        await using (var old = MvccStore.Open(fs, Old, Options(clock)))
        {
            next = await WriteAsync(old, oldRandom, 150, 1, "s");
            await old.SyncAsync();
        }

        Assert.That(Version1Stores.Rewrite(fs, Old), Is.GreaterThan(0));
        var (format, kinds) = Version1Stores.Inspect(fs, Old);
        Assert.That((format, kinds[1] > 0, kinds[3], kinds[4]), Is.EqualTo((1L, true, 0, 0)), "the rewritten file is a version 1 store");

        var fresh = MvccStore.Open(fs, New, Options(clock));
        var reopened = MvccStore.Open(fs, Old, Options(clock));
        try
        {
            await WriteAsync(fresh, newRandom, 150, 1, "s");
            Assert.That(History(reopened), Is.EqualTo(History(fresh)), $"seed {seed}: the version 1 store reads and hashes as the same history in version 2");

            // Both go on with the same writes (the old one now writes version 2 beside its version 1 entries) and compact.
            ulong after = await WriteAsync(reopened, oldRandom, 100, next, "later");
            await WriteAsync(fresh, newRandom, 100, next, "later");
            long compactAt = Math.Max(reopened.Revision - 3, reopened.CompactRevision + 1);
            foreach (var store in new[] { reopened, fresh })
            {
                await store.CompactAsync(compactAt, physical: true, after);
            }

            Assert.That(History(reopened), Is.EqualTo(History(fresh)), $"seed {seed}: after writes and a compaction");
            await reopened.SyncAsync();
            await fresh.SyncAsync();
        }
        finally
        {
            await reopened.DisposeAsync();
            await fresh.DisposeAsync();
        }

        (format, kinds) = Version1Stores.Inspect(fs, Old);
        Assert.That((format, kinds[3] > 0), Is.EqualTo((2L, true)), "the opened store was raised to version 2 and wrote kind 3");
        await using var old2 = MvccStore.Open(fs, Old, Options(clock));
        await using var new2 = MvccStore.Open(fs, New, Options(clock));
        Assert.That(History(old2), Is.EqualTo(History(new2)), $"seed {seed}: after a restart");
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task TheHashOfAVersion1HistoryIsStillTheHashOfItsStoredBytes(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);
        await using (var old = MvccStore.Open(fs, Old, Options(clock)))
        {
            await WriteAsync(old, new Random(seed), 150, 1, "s", compactions: false);
            await old.SyncAsync();
        }

        Version1Stores.Rewrite(fs, Old);

        // HashKV's definition before version 2: CRC-32C of "key", then each entry's key and value bytes.
        uint expected;
        using (var database = BTreeDatabase.Open(fs, Old + "/mvcc.db", MvccStoreOptions.Default.BTree))
        using (var tx = database.BeginRead())
        {
            expected = Crc(0, "key"u8);
            var cursor = tx.OpenBucket("key")!.CreateCursor();
            for (bool more = cursor.First(); more; more = cursor.Next())
            {
                expected = Crc(Crc(expected, cursor.Key), cursor.Value);
            }
        }

        await using var reopened = MvccStore.Open(fs, Old, Options(clock));
        Assert.That(reopened.HashKV().Hash, Is.EqualTo(expected), $"seed {seed}");
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task ImagesCarryEitherEncodingBothWays(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var clock = Leases.LeaseTestSupport.Clock();
        var fs = new FaultInjectingFileSystem(seed);
        await using (var old = MvccStore.Open(fs, Old, Options(clock)))
        {
            await WriteAsync(old, new Random(seed), 120, 1, "s");
            await old.SyncAsync();
        }

        Version1Stores.Rewrite(fs, Old);
        await using var holdingVersion1 = MvccStore.Open(fs, Old, Options(clock));
        await using var target = MvccStore.Open(fs, New, Options(clock));
        await WriteAsync(target, new Random(seed + 1), 60, 1, "t");
        string targetBefore = Describe(target);

        // The image of a store holding version 1 entries restores into a store that wrote version 2 ...
        var (image, _) = await ImageBytesAsync(holdingVersion1);
        await target.RestoreImageAsync(new MemoryStream(image));
        Assert.That(Describe(target), Is.EqualTo(Describe(holdingVersion1)), $"seed {seed}: version 1 entries restored");

        // ... and a version 2 image into the store that held version 1 entries.
        await using var other = MvccStore.Open(fs, "/data/other", Options(clock));
        await WriteAsync(other, new Random(seed + 1), 60, 1, "t");
        Assert.That(Describe(other), Is.EqualTo(targetBefore), "the same writes as the target's");
        var (image2, _) = await ImageBytesAsync(other);
        await holdingVersion1.RestoreImageAsync(new MemoryStream(image2));
        Assert.That(Describe(holdingVersion1), Is.EqualTo(targetBefore), $"seed {seed}: version 2 entries restored");
    }

    [Test]
    public void AFormatVersionThisLibraryDoesNotKnowIsRefusedNamingIt()
    {
        var fs = new FaultInjectingFileSystem(1);
        using (var store = StoreTestSupport.OpenOn(fs))
        {
            store.Put("a", "1");
        }

        using (var database = BTreeDatabase.Open(fs, StoreTestSupport.Directory + "/mvcc.db", MvccStoreOptions.Default.BTree))
        {
            using var tx = database.BeginWrite();
            var version = new byte[8];
            BinaryPrimitives.WriteInt64BigEndian(version, 3);
            tx.OpenBucket("meta")!.Put("formatVersion"u8, version);
            tx.Commit(CommitDurability.Synced);
        }

        var error = Assert.Throws<CorruptionException>(() => StoreTestSupport.OpenOn(fs).Dispose());
        Assert.That(error!.Message, Does.Contain("format version is 3").And.Contain("reads versions 1 and 2"));
    }

    [TestCase("0380", "truncated", TestName = "A varint cut off by the value's end is truncated")]
    [TestCase("03" + "80808080808080808002" + "01000161", "more than 64 bits", TestName = "A varint of more than 64 bits is overlong")]
    [TestCase("03" + "8000" + "01000161", "ends in a zero byte", TestName = "A varint ending in a zero byte is overlong")]
    [TestCase("03" + "02" + "01000161", "create revision below 1", TestName = "A create revision distance beyond the mod revision is negative")]
    [TestCase("03" + "00" + "00000161", "version is not between 1", TestName = "A version of zero is refused")]
    [TestCase("03" + "00" + "80808080808080808001" + "000161", "version is not between 1", TestName = "A version beyond 2^63-1 (negative) is refused")]
    [TestCase("03" + "00" + "01" + "00" + "05" + "61", "key length does not fit", TestName = "A key length beyond the bytes is refused")]
    [TestCase("09" + "00010001" + "61", "kind is not a put's", TestName = "An unknown kind is refused")]
    public void AMalformedStoredValueNamesTheStoreTheBucketAndTheRevision(string hex, string problem)
    {
        var fs = new FaultInjectingFileSystem(1);
        using (var store = StoreTestSupport.OpenOn(fs))
        {
            store.Put("a", "v");
            store.Put("b", "v");
        }

        Version1Stores.Overwrite(fs, StoreTestSupport.Directory, RevisionKey.Encode(new Revision(2, 0), tombstone: false), Convert.FromHexString(hex));
        var error = Assert.Throws<CorruptionException>(() => StoreTestSupport.OpenOn(fs).Dispose());
        Assert.That(error!.Message, Does.Contain("/data/mvcc/mvcc.db").And.Contain("bucket 'key'").And.Contain("revision 2.0").And.Contain(problem));
    }

    /// <summary>Everything the store reads: each revision above the compaction, all keys and the hash at it; then <see cref="Describe"/>.</summary>
    private static string History(MvccStore store)
    {
        var lines = new List<string>();
        for (long revision = Math.Max(store.CompactRevision + 1, 1); revision <= store.Revision; revision++)
        {
            var all = store.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 }, Revision = revision }).Kvs;
            lines.Add($"{revision}: {string.Join(" ", all.Select(kv => $"{S(kv.Key)}={S(kv.Value)}@{kv.ModRevision}/{kv.CreateRevision}/{kv.Version}/{kv.Lease}"))} hash {store.HashKV(revision).Hash:x8}");
        }

        lines.Add(Describe(store));
        return string.Join("\n", lines);
    }

    private static uint Crc(uint crc, ReadOnlySpan<byte> data)
    {
        uint state = ~crc;
        foreach (byte b in data)
        {
            state = System.Numerics.BitOperations.Crc32C(state, b);
        }

        return ~state;
    }
}
