using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>Range options as etcd answers them, and bad input refused with etcd's errors (or a clear one) while the store stays unchanged.</summary>
public sealed class RangeAndBadInputTests
{
    private static MvccStore Filled(int seed)
    {
        var store = OpenOn(new FaultInjectingFileSystem(seed));
        store.Put("a", "3");   // 2
        store.Put("b", "1");   // 3
        store.Put("c", "2");   // 4
        store.Put("a", "0");   // 5
        store.Put("d\u00ff", "9"); // 6
        return store;
    }

    [Test]
    public void PrefixFromKeyAndAllKeysRanges()
    {
        using var store = Filled(1);
        string Keys(RangeResponse r) => string.Join(",", r.Kvs.Select(kv => S(kv.Key)));
        Assert.That(Keys(store.Range(new RangeRequest { Key = B("b"), RangeEnd = KeyRange.AllKeysFrom() })), Is.EqualTo("b,c,d\u00ff"));
        Assert.That(Keys(store.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = KeyRange.AllKeysFrom() })), Is.EqualTo("a,b,c,d\u00ff"));
        Assert.That(Keys(store.Range(new RangeRequest { Key = B("d"), RangeEnd = KeyRange.PrefixEnd(B("d")) })), Is.EqualTo("d\u00ff"));
        Assert.That(Keys(store.Range(new RangeRequest { Key = B("a"), RangeEnd = B("c") })), Is.EqualTo("a,b"));
        Assert.That(KeyRange.PrefixEnd([0x61, 0xFF]), Is.EqualTo(new byte[] { 0x62 }));
        Assert.That(KeyRange.PrefixEnd([0xFF, 0xFF]), Is.EqualTo(new byte[] { 0 }));
    }

    [Test]
    public void LimitMoreCountKeysOnlyCountOnlyAndSort()
    {
        using var store = Filled(2);
        var limited = store.Range(new RangeRequest { Key = B("a"), RangeEnd = KeyRange.AllKeysFrom(), Limit = 2 });
        Assert.That((limited.Kvs.Count, limited.More, limited.Count, limited.Header.Revision), Is.EqualTo((2, true, 4L, 6L)));

        var countOnly = store.Range(new RangeRequest { Key = B("a"), RangeEnd = KeyRange.AllKeysFrom(), CountOnly = true });
        Assert.That((countOnly.Kvs.Count, countOnly.Count), Is.EqualTo((0, 4L)));

        var keysOnly = store.Range(new RangeRequest { Key = B("a"), RangeEnd = KeyRange.AllKeysFrom(), KeysOnly = true, SortTarget = SortTarget.Value, SortOrder = SortOrder.Descend });
        Assert.That(keysOnly.Kvs.Select(kv => S(kv.Key)), Is.EqualTo(new[] { "d\u00ff", "c", "b", "a" }), "sorted by value though values are not returned");
        Assert.That(keysOnly.Kvs.All(kv => kv.Value.IsEmpty), Is.True);

        var byMod = store.Range(new RangeRequest { Key = B("a"), RangeEnd = KeyRange.AllKeysFrom(), SortTarget = SortTarget.Mod, SortOrder = SortOrder.Descend, Limit = 1 });
        Assert.That((S(byMod.Kvs.Single().Key), byMod.More), Is.EqualTo(("d\u00ff", true)));

        var filtered = store.Range(new RangeRequest { Key = B("a"), RangeEnd = KeyRange.AllKeysFrom(), MinModRevision = 4, MaxCreateRevision = 4 });
        Assert.That(filtered.Kvs.Select(kv => S(kv.Key)), Is.EqualTo(new[] { "a", "c" }));
        Assert.That(filtered.Count, Is.EqualTo(4), "Count is before the filters, as etcd");
    }

    [Test]
    public void ReadsAtFutureAndCompactedRevisionsFailWithEtcdsErrors()
    {
        using var store = Filled(3);
        var future = Assert.Throws<FutureRevisionException>(() => store.Get("a", revision: 7))!;
        Assert.That((future.EtcdMessage, future.GrpcStatusCode, future.CurrentRevision), Is.EqualTo(("etcdserver: mvcc: required revision is a future revision", 11, 6L)));
        store.Compact(4);
        var compacted = Assert.Throws<RevisionCompactedException>(() => store.Get("a", revision: 3))!;
        Assert.That((compacted.EtcdMessage, compacted.CompactRevision), Is.EqualTo(("etcdserver: mvcc: required revision has been compacted", 4L)));
        Assert.That(S(store.Get("a", revision: 4).Kvs.Single().Value), Is.EqualTo("3"), "the compact revision itself is readable");
        Assert.Throws<RevisionCompactedException>(() => store.Compact(4));
        Assert.Throws<RevisionCompactedException>(() => store.Compact(2));
        Assert.Throws<FutureRevisionException>(() => store.Compact(7));
    }

    [Test]
    public void BadInputIsRefusedAndChangesNothing()
    {
        using var store = Filled(4);
        long revision = store.Revision;
        Assert.That(Assert.Throws<MvccException>(() => store.Range(new RangeRequest()))!.EtcdMessage, Is.EqualTo("etcdserver: key is not provided"));
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Value = B("v") }))!.Error, Is.EqualTo(MvccError.EmptyKey));
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.DeleteRangeAsync(new DeleteRangeRequest()))!.Error, Is.EqualTo(MvccError.EmptyKey));
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.TxnAsync(new TxnRequest { Compare = [new Compare()] }))!.Error, Is.EqualTo(MvccError.EmptyKey));
        Assert.That(Assert.Throws<MvccException>(() => store.Range(new RangeRequest { Key = B("a"), SortOrder = (SortOrder)7 }))!.EtcdMessage, Is.EqualTo("etcdserver: invalid sort option"));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Range(new RangeRequest { Key = B("a"), Limit = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Range(new RangeRequest { Key = B("a"), Revision = -1 }));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.CompactAsync(-1));
        Assert.ThrowsAsync<ArgumentNullException>(async () => await store.PutAsync(null!));
        var tooLarge = Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Key = B("big"), Value = new byte[MvccStoreOptions.DefaultMaxRequestBytes] }))!;
        Assert.That(tooLarge.EtcdMessage, Is.EqualTo("etcdserver: request is too large"));
        store.PutAsync(new PutRequest { Key = B("a"), Value = B("v") }, consistentIndex: 5).AsTask().Wait();
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await store.PutAsync(new PutRequest { Key = B("a"), Value = B("v") }, consistentIndex: 5), "not above the last applied index");

        Assert.That(store.Revision, Is.EqualTo(revision + 1), "only the put with consistent index 5 was applied");
        Assert.That(store.ConsistentIndex, Is.EqualTo(5UL));
        Assert.That(store.Get("big").Kvs, Is.Empty);
    }

    [Test]
    public void AStoreThatFailedAFlushRefusesEverythingUntilReopened()
    {
        var fs = new FaultInjectingFileSystem(5);
        var store = OpenOn(fs);
        store.Put("a", "1");
        fs.FailWhen = op => op.Kind == FaultOperationKind.Flush;
        Assert.ThrowsAsync<IOException>(async () => await store.PutAsync(new PutRequest { Key = B("a"), Value = B("2") }));
        fs.FailWhen = null;
        Assert.ThrowsAsync<EmbeddedRaft.Storage.StorageFaultedException>(async () => await store.PutAsync(new PutRequest { Key = B("b"), Value = B("1") }));
        Assert.Throws<EmbeddedRaft.Storage.StorageFaultedException>(() => store.Get("a"));
        store.Dispose();

        using var reopened = OpenOn(fs);
        Assert.That(reopened.Revision, Is.AnyOf(2L, 3L));
        Assert.That(reopened.Get("b").Kvs, Is.Empty);
    }
}
