using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>The data model, as etcd numbers it: revisions, create/mod revisions, versions, generations.</summary>
public sealed class MvccStoreBasicsTests
{
    [Test]
    public void AnEmptyStoreIsAtRevisionOneAndEachWriteAddsOne()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(1));
        Assert.That(store.Revision, Is.EqualTo(1));
        Assert.That(store.CompactRevision, Is.EqualTo(-1));

        Assert.That(store.Put("a", "1").Header.Revision, Is.EqualTo(2));
        Assert.That(store.Put("a", "2").Header.Revision, Is.EqualTo(3));
        Assert.That(store.Put("b", "x").Header.Revision, Is.EqualTo(4));

        var a = store.Get("a").Kvs.Single();
        Assert.Multiple(() =>
        {
            Assert.That(S(a.Value), Is.EqualTo("2"));
            Assert.That(a.CreateRevision, Is.EqualTo(2));
            Assert.That(a.ModRevision, Is.EqualTo(3));
            Assert.That(a.Version, Is.EqualTo(2));
            Assert.That(store.Revision, Is.EqualTo(4));
        });
    }

    [Test]
    public void ADeleteEndsTheGenerationAndTheNextPutStartsAtVersionOne()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(2));
        store.Put("k", "v1");
        store.Put("k", "v2");
        var deleted = store.Delete("k", prevKv: true);
        Assert.That(deleted.Deleted, Is.EqualTo(1));
        Assert.That(deleted.Header.Revision, Is.EqualTo(4));
        Assert.That(S(deleted.PrevKvs.Single().Value), Is.EqualTo("v2"));
        Assert.That(store.Get("k").Kvs, Is.Empty);

        store.Put("k", "v3");
        var kv = store.Get("k").Kvs.Single();
        Assert.That((kv.CreateRevision, kv.ModRevision, kv.Version), Is.EqualTo((5L, 5L, 1L)));

        // The past is still there.
        Assert.That(S(store.Get("k", revision: 3).Kvs.Single().Value), Is.EqualTo("v2"));
        Assert.That(store.Get("k", revision: 4).Kvs, Is.Empty);
    }

    [Test]
    public void ADeleteOfNothingCreatesNoRevision()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(3));
        store.Put("a", "1");
        var response = store.Delete("zzz");
        Assert.That(response.Deleted, Is.EqualTo(0));
        Assert.That(response.Header.Revision, Is.EqualTo(2));
        Assert.That(store.Revision, Is.EqualTo(2));
    }

    [Test]
    public void ReopeningRebuildsTheIndexFromTheBTree()
    {
        var fs = new FaultInjectingFileSystem(4);
        using (var store = OpenOn(fs))
        {
            store.Put("a", "1");
            store.Put("a", "2");
            store.Delete("a");
            store.Put("a", "3");
            store.Put("b", "1");
        }

        using var reopened = OpenOn(fs);
        Assert.That(reopened.Revision, Is.EqualTo(6));
        var a = reopened.Get("a").Kvs.Single();
        Assert.That((S(a.Value), a.CreateRevision, a.ModRevision, a.Version), Is.EqualTo(("3", 5L, 5L, 1L)));
        Assert.That(S(reopened.Get("a", revision: 3).Kvs.Single().Value), Is.EqualTo("2"));
        Assert.That(reopened.Get("a", revision: 4).Kvs, Is.Empty);
    }
}
