using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The writer reuses one MVCC write transaction for every request of a batch: each request must
/// start at the store's current revision with no changes, whatever the one before it did (changed,
/// refused, or changed nothing), and a new batch must get a new transaction.
/// </summary>
public sealed class WriteTransactionReuseTests
{
    [TestCase(10_000, TestName = "AllInOneBatch")]
    [TestCase(2, TestName = "BatchesOfTwo")]
    public async Task EachRequestOfABatchStartsAfreshAfterWhateverTheOneBeforeItDid(int batchLimit)
    {
        var fs = new FaultInjectingFileSystem(batchLimit);
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchLimit = batchLimit, BatchInterval = MvccStoreOptions.MaxBatchInterval };
        var store = OpenOn(fs, options);

        // A change: revision 2.
        Assert.That((await store.PutAsync(new PutRequest { Key = B("a"), Value = B("1") })).Header.Revision, Is.EqualTo(2));

        // Changes nothing: a delete of nothing, and a read-only txn, report the store's revision, not a new one.
        Assert.That((await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B("missing") })).Header.Revision, Is.EqualTo(2));
        var readOnly = await store.TxnAsync(new TxnRequest { Success = [RequestOp.Range(new RangeRequest { Key = B("a") })] });
        Assert.That(readOnly.Header.Revision, Is.EqualTo(2));
        Assert.That(S(readOnly.Responses.Single().ResponseRange!.Kvs.Single().Value), Is.EqualTo("1"));

        // Refused after a change: the store stays usable (a leftover "changed" mark would fault it).
        var refused = Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Key = B("missing"), IgnoreValue = true }));
        Assert.That(refused!.Error, Is.EqualTo(MvccError.KeyNotFound));
        var badLease = Assert.ThrowsAsync<MvccException>(async () => await store.TxnAsync(new TxnRequest
        {
            Success = [RequestOp.Put(new PutRequest { Key = B("b"), Value = B("x") }), RequestOp.Put(new PutRequest { Key = B("c"), Value = B("x"), Lease = 42 })],
        }));
        Assert.That(badLease!.Error, Is.EqualTo(MvccError.LeaseNotFound));
        Assert.That(store.Revision, Is.EqualTo(2));
        Assert.That(store.Get("b").Kvs, Is.Empty, "the refused txn wrote nothing");

        // A txn of three changes takes one revision; its range sees its own earlier put.
        var txn = await store.TxnAsync(new TxnRequest
        {
            Success =
            [
                RequestOp.Put(new PutRequest { Key = B("a"), Value = B("2") }),
                RequestOp.Range(new RangeRequest { Key = B("a") }),
                RequestOp.Put(new PutRequest { Key = B("b"), Value = B("1") }),
                RequestOp.DeleteRange(new DeleteRangeRequest { Key = B("missing") }),
            ],
        });
        Assert.That(txn.Header.Revision, Is.EqualTo(3));
        Assert.That(S(txn.Responses[1].ResponseRange!.Kvs.Single().Value), Is.EqualTo("2"));
        Assert.That(txn.Responses[3].ResponseDeleteRange!.Header.Revision, Is.EqualTo(3), "inside a txn that changed something, a delete of nothing reports its revision");

        // The next request starts at 3, with no changes counted from the txn.
        Assert.That((await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B("missing") })).Header.Revision, Is.EqualTo(3));
        var lease = await store.LeaseGrantAsync(ttlSeconds: 60, id: 7);
        Assert.That((await store.PutAsync(new PutRequest { Key = B("leased"), Value = B("v"), Lease = lease.Id })).Header.Revision, Is.EqualTo(4));
        Assert.That((await store.LeaseRevokeAsync(lease.Id)).Header.Revision, Is.EqualTo(5), "the revocation deleted one key: one new revision");
        var empty = await store.LeaseGrantAsync(ttlSeconds: 60, id: 8);
        Assert.That((await store.LeaseRevokeAsync(empty.Id)).Header.Revision, Is.EqualTo(5), "a revocation of a lease with no keys changes nothing");
        Assert.That((await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B("a"), PrevKv = true })).Header.Revision, Is.EqualTo(6));
        var again = await store.PutAsync(new PutRequest { Key = B("a"), Value = B("3"), PrevKv = true });
        Assert.That((again.Header.Revision, again.PrevKv), Is.EqualTo((7L, (KeyValue?)null)));

        // Every revision reads as written, before and after the batch is durable and the store reopened.
        void CheckHistory(MvccStore s)
        {
            Assert.That(s.Revision, Is.EqualTo(7));
            Assert.That(S(s.Get("a", revision: 2).Kvs.Single().Value), Is.EqualTo("1"));
            var a3 = s.Get("a", revision: 3).Kvs.Single();
            Assert.That((S(a3.Value), a3.Version, a3.CreateRevision, a3.ModRevision), Is.EqualTo(("2", 2L, 2L, 3L)));
            Assert.That(s.Get("a", revision: 6).Kvs, Is.Empty);
            var a7 = s.Get("a").Kvs.Single();
            Assert.That((S(a7.Value), a7.Version, a7.CreateRevision, a7.ModRevision), Is.EqualTo(("3", 1L, 7L, 7L)));
            Assert.That(s.Get("leased", revision: 4).Kvs.Single().Lease, Is.EqualTo(7));
            Assert.That(s.Get("leased").Kvs, Is.Empty);
            Assert.That(S(s.Get("b").Kvs.Single().Value), Is.EqualTo("1"));
        }

        await CheckHistoryAgainAfterReopenAsync(store, fs, options, CheckHistory);
    }

    /// <summary>
    /// A put without PrevKv is answered by its revision alone, its index change and revision
    /// published together: IgnoreValue and IgnoreLease keep what they keep, the key's lease moves
    /// with each put, a refused put leaves the next one its revision, and every revision reads as
    /// written inside one uncommitted batch and after a reopen.
    /// </summary>
    [Test]
    public async Task PutsAnsweredByTheirRevisionKeepValueAndLeaseAsAskedAndMoveTheKeysLease()
    {
        var fs = new FaultInjectingFileSystem(15);
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = MvccStoreOptions.MaxBatchInterval };
        var store = OpenOn(fs, options);
        var lease = await store.LeaseGrantAsync(ttlSeconds: 60, id: 5);

        async Task<long> PutAsync(PutRequest request) => (await store.PutAsync(request)).Header.Revision;

        Assert.That(await PutAsync(new PutRequest { Key = B("a"), Value = B("1"), Lease = lease.Id }), Is.EqualTo(2));
        Assert.That(await PutAsync(new PutRequest { Key = B("a"), IgnoreValue = true }), Is.EqualTo(3), "IgnoreValue keeps the value; no lease detaches it");
        Assert.That(await PutAsync(new PutRequest { Key = B("b"), Value = B("1"), Lease = lease.Id }), Is.EqualTo(4));
        Assert.That(await PutAsync(new PutRequest { Key = B("b"), Value = B("2"), IgnoreLease = true }), Is.EqualTo(5), "IgnoreLease keeps the lease");
        Assert.That(await PutAsync(new PutRequest { Key = B("c"), Value = B("1"), Lease = lease.Id }), Is.EqualTo(6));

        var missing = Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Key = B("none"), IgnoreLease = true }));
        Assert.That(missing!.Error, Is.EqualTo(MvccError.KeyNotFound));
        var noLease = Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Key = B("d"), Value = B("1"), Lease = 99 }));
        Assert.That(noLease!.Error, Is.EqualTo(MvccError.LeaseNotFound));
        Assert.That(await PutAsync(new PutRequest { Key = B("d"), Value = B("1") }), Is.EqualTo(7), "refusals took no revision");

        // b and c are on the lease, a left it: the revocation deletes b and c in one revision.
        Assert.That((await store.LeaseRevokeAsync(lease.Id)).Header.Revision, Is.EqualTo(8));

        void CheckHistory(MvccStore s)
        {
            Assert.That(s.Revision, Is.EqualTo(8));
            var a3 = s.Get("a", revision: 3).Kvs.Single();
            Assert.That((S(a3.Value), a3.Version, a3.CreateRevision, a3.ModRevision, a3.Lease), Is.EqualTo(("1", 2L, 2L, 3L, 0L)));
            var b5 = s.Get("b", revision: 5).Kvs.Single();
            Assert.That((S(b5.Value), b5.Version, b5.CreateRevision, b5.ModRevision, b5.Lease), Is.EqualTo(("2", 2L, 4L, 5L, 5L)));
            Assert.That(s.Get("a").Kvs.Single().ModRevision, Is.EqualTo(3), "a outlived the lease");
            Assert.That(s.Get("b").Kvs, Is.Empty);
            Assert.That(s.Get("c").Kvs, Is.Empty);
            Assert.That(s.Get("c", revision: 7).Kvs.Single().Lease, Is.EqualTo(5));
            Assert.That(s.Get("none").Kvs, Is.Empty);
            Assert.That(s.Get("d").Kvs.Single().ModRevision, Is.EqualTo(7));
        }

        await CheckHistoryAgainAfterReopenAsync(store, fs, options, CheckHistory);
    }

    /// <summary>Checks the history on <paramref name="store"/>, closes it, and checks the same history and hash on the store reopened from its files.</summary>
    private static async Task CheckHistoryAgainAfterReopenAsync(MvccStore store, FaultInjectingFileSystem fs, MvccStoreOptions options, Action<MvccStore> checkHistory)
    {
        checkHistory(store);
        uint hash = store.HashKV().Hash;
        await store.SyncAsync();
        await store.DisposeAsync();
        using var reopened = OpenOn(fs, options);
        checkHistory(reopened);
        Assert.That(reopened.HashKV().Hash, Is.EqualTo(hash));
    }
}
