using EmbeddedRaft.Mvcc.Leases;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>The lease bucket's encoding, pinned as docs/formats.md ("MVCC store") describes it.</summary>
public sealed class LeaseFormatTests
{
    [Test]
    public void ALeaseIsItsIdBigEndianToItsTtlLittleEndian()
    {
        Assert.That(LeaseBucket.Name, Is.EqualTo("lease"));
        Assert.That(Convert.ToHexString(LeaseBucket.Key(0x0102)), Is.EqualTo("0000000000000102"));
        Assert.That(Convert.ToHexString(LeaseBucket.Value(30)), Is.EqualTo("1E00000000000000"));
        Assert.That(LeaseBucket.TryDecode(LeaseBucket.Key(7), LeaseBucket.Value(30), out long id, out long ttl), Is.True);
        Assert.That((id, ttl), Is.EqualTo((7L, 30L)));
        Assert.That(LeaseBucket.TryDecode(LeaseBucket.Key(0), LeaseBucket.Value(30), out _, out _), Is.False, "id 0 means no lease");
        Assert.That(LeaseBucket.TryDecode(LeaseBucket.Key(7), LeaseBucket.Value(0), out _, out _), Is.False, "a TTL is at least 1 s");
        Assert.That(LeaseBucket.TryDecode([1, 2], LeaseBucket.Value(30), out _, out _), Is.False);
    }

    [Test]
    public void ARenewedLeaseAlsoHoldsItsLastKeepAlivesLogIndexLittleEndian()
    {
        Assert.That(Convert.ToHexString(LeaseBucket.Value(30, 0x0102)), Is.EqualTo("1E000000000000000201000000000000"));
        Assert.That(LeaseBucket.TryDecode(LeaseBucket.Key(7), LeaseBucket.Value(30, 0x0102), out long id, out long ttl, out long renewedAt), Is.True);
        Assert.That((id, ttl, renewedAt), Is.EqualTo((7L, 30L, 0x0102L)));
        Assert.That(LeaseBucket.TryDecode(LeaseBucket.Key(7), LeaseBucket.Value(30), out _, out _, out renewedAt), Is.True);
        Assert.That(renewedAt, Is.Zero, "an 8-byte value: never renewed from the log");
        Assert.That(LeaseBucket.TryDecode(LeaseBucket.Key(7), new byte[12], out _, out _, out _), Is.False);
    }

    [Test]
    public async Task TheStoreWritesTheLeaseBucketAndTheLeaseInTheKeysStoredValue()
    {
        var fs = new FaultInjectingFileSystem(1);
        var clock = LeaseTestSupport.Clock();
        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            store.Grant(30, id: 0x55);
            await store.PutAsync(new PutRequest { Key = "k"u8.ToArray(), Value = "v"u8.ToArray(), Lease = 0x55 });
        }

        using var database = BTreeDatabase.Open(fs, LeaseTestSupport.Directory + "/mvcc.db", MvccStoreOptions.Default.BTree);
        using var tx = database.BeginRead();
        var leases = tx.OpenBucket("lease")!;
        Assert.That(leases.Count, Is.EqualTo(1));
        Assert.That(leases.Get(LeaseBucket.Key(0x55)), Is.EqualTo(LeaseBucket.Value(30)));
        var keys = tx.OpenBucket("key")!.CreateCursor();
        Assert.That(keys.Last(), Is.True);
        Assert.That(EmbeddedRaft.Mvcc.Store.RevisionKey.TryDecode(keys.Key, out var revision, out bool tombstone), Is.True);
        Assert.That(EmbeddedRaft.Mvcc.Store.StoredValue.TryDecode(keys.Value, revision.Main, tombstone, out var decoded), Is.True);
        Assert.That(decoded.Lease, Is.EqualTo(0x55));
    }

    [Test]
    public async Task AKeyNamingALeaseTheBucketLacksIsReportedAsCorruption()
    {
        var fs = new FaultInjectingFileSystem(1);
        var clock = LeaseTestSupport.Clock();
        await using (var store = LeaseTestSupport.Open(fs, clock))
        {
            store.Grant(30, id: 5);
            store.Grant(30, id: 6);
            await store.PutAsync(new PutRequest { Key = "k"u8.ToArray(), Lease = 6 });
        }

        using (var database = BTreeDatabase.Open(fs, LeaseTestSupport.Directory + "/mvcc.db", MvccStoreOptions.Default.BTree))
        {
            using var tx = database.BeginWrite();
            tx.OpenBucket("lease")!.Delete(LeaseBucket.Key(6));
            tx.Commit();
        }

        var error = Assert.Throws<EmbeddedRaft.Storage.CorruptionException>(() => LeaseTestSupport.Open(fs, clock))!;
        Assert.That(error.Message, Does.Contain("lease 6"));
    }

    /// <summary>Removes the lease bucket, leaving the store as one written before leases existed.</summary>
    internal static void DropLeaseBucket(FaultInjectingFileSystem fs)
    {
        using var database = BTreeDatabase.Open(fs, LeaseTestSupport.Directory + "/mvcc.db", MvccStoreOptions.Default.BTree);
        using var tx = database.BeginWrite();
        Assert.That(tx.DeleteBucket("lease"), Is.True);
        tx.Commit();
    }
}
