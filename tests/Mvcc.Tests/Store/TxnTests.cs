using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>Transactions as etcd runs them: one revision, reads see earlier writes, compares on the state before, etcd's refusals.</summary>
public sealed class TxnTests
{
    private static RequestOp PutOp(string key, string value) => RequestOp.Put(new PutRequest { Key = B(key), Value = B(value) });

    private static RequestOp DeleteOp(string key, string? end = null) => RequestOp.DeleteRange(new DeleteRangeRequest { Key = B(key), RangeEnd = end is null ? default : B(end) });

    private static RequestOp GetOp(string key) => RequestOp.Range(new RangeRequest { Key = B(key) });

    [Test]
    public void AllWritesOfATxnTakeOneRevisionAndLaterOpsSeeEarlierWrites()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(1));
        store.Put("x", "old");
        var response = store.Txn(new TxnRequest { Success = [PutOp("a", "1"), GetOp("a"), PutOp("b", "2"), DeleteOp("x"), GetOp("x")] });

        Assert.That(response.Succeeded, Is.True);
        Assert.That(response.Header.Revision, Is.EqualTo(3));
        Assert.That(store.Revision, Is.EqualTo(3));
        var seen = response.Responses[1].ResponseRange!;
        Assert.That(seen.Header.Revision, Is.EqualTo(3), "a range after a write reports the txn's new revision");
        Assert.That(S(seen.Kvs.Single().Value), Is.EqualTo("1"));
        Assert.That(response.Responses[3].ResponseDeleteRange!.Deleted, Is.EqualTo(1));
        Assert.That(response.Responses[4].ResponseRange!.Kvs, Is.Empty);
        Assert.That(store.Get("a").Kvs.Single().ModRevision, Is.EqualTo(store.Get("b").Kvs.Single().ModRevision));
    }

    [Test]
    public void ComparesAreJudgedOnTheStateBeforeTheTxnAlsoInNestedTxns()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(2));
        store.Put("flag", "off");
        var nested = new TxnRequest
        {
            Compare = [new Compare { Key = B("flag"), Target = CompareTarget.Value, Result = CompareResult.Equal, Value = B("on") }],
            Success = [PutOp("seen", "on")],
            Failure = [PutOp("seen", "off")],
        };
        var response = store.Txn(new TxnRequest { Success = [PutOp("flag", "on"), RequestOp.Txn(nested)] });

        Assert.That(S(store.Get("seen").Kvs.Single().Value), Is.EqualTo("off"), "the nested compare saw flag=off, the value before the txn");
        var nestedResponse = response.Responses[1].ResponseTxn!;
        Assert.That(nestedResponse.Succeeded, Is.False);
        Assert.That(nestedResponse.Header.Revision, Is.EqualTo(0), "etcd leaves a nested txn's header empty");
    }

    [Test]
    public void ACompareOverAKeyRangeHoldsOnlyWhenItHoldsForEveryKey()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(3));
        store.Put("p/1", "a");
        store.Put("p/2", "a");
        store.Put("p/2", "b");
        Compare VersionIsOne() => new() { Key = B("p/"), RangeEnd = KeyRange.PrefixEnd(B("p/")), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 1 };
        Assert.That(store.Txn(new TxnRequest { Compare = [VersionIsOne()] }).Succeeded, Is.False);
        store.Delete("p/2");
        Assert.That(store.Txn(new TxnRequest { Compare = [VersionIsOne()] }).Succeeded, Is.True);

        var missingValue = new Compare { Key = B("nothing"), Target = CompareTarget.Value, Result = CompareResult.NotEqual, Value = B("x") };
        Assert.That(store.Txn(new TxnRequest { Compare = [missingValue] }).Succeeded, Is.False, "a value compare on a missing key is false");
        var missingVersion = new Compare { Key = B("nothing"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 0 };
        Assert.That(store.Txn(new TxnRequest { Compare = [missingVersion] }).Succeeded, Is.True, "a missing key has version 0");
    }

    [Test]
    public void AReadOnlyTxnCreatesNoRevision()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(4));
        store.Put("a", "1");
        var response = store.Txn(new TxnRequest { Success = [GetOp("a"), DeleteOp("missing")] });
        Assert.That(response.Header.Revision, Is.EqualTo(2));
        Assert.That(store.Revision, Is.EqualTo(2));
    }

    private static IEnumerable<TestCaseData> DuplicateKeyTxns()
    {
        yield return new TestCaseData(new TxnRequest { Success = [PutOp("a", "1"), PutOp("a", "2")] }).SetArgDisplayNames("put twice");
        yield return new TestCaseData(new TxnRequest { Failure = [DeleteOp("a", "c"), PutOp("b", "1")] }).SetArgDisplayNames("put inside a deleted range");
        yield return new TestCaseData(new TxnRequest { Success = [PutOp("a", "1"), RequestOp.Txn(new TxnRequest { Success = [PutOp("a", "2")] })] }).SetArgDisplayNames("put again in a nested txn");
        yield return new TestCaseData(new TxnRequest { Success = [RequestOp.Txn(new TxnRequest { Failure = [DeleteOp("k")] }), PutOp("k", "1")] }).SetArgDisplayNames("put of a key a nested txn deletes");
    }

    [TestCaseSource(nameof(DuplicateKeyTxns))]
    public void WritingAKeyTwiceInOneBranchIsRefusedAsEtcdDoes(TxnRequest txn)
    {
        using var store = OpenOn(new FaultInjectingFileSystem(5));
        var error = Assert.ThrowsAsync<MvccException>(async () => await store.TxnAsync(txn))!;
        Assert.That((error.Error, error.EtcdMessage, error.GrpcStatusCode), Is.EqualTo((MvccError.DuplicateKey, "etcdserver: duplicate key given in txn request", 3)));
        Assert.That(store.Revision, Is.EqualTo(1));
    }

    [Test]
    public void TheThenAndElseBranchesOfANestedTxnMayWriteTheSameKey()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(6));
        var nested = new TxnRequest { Success = [PutOp("a", "then")], Failure = [PutOp("a", "else")] };
        var response = store.Txn(new TxnRequest { Success = [RequestOp.Txn(nested), PutOp("b", "1")] });
        Assert.That(response.Succeeded, Is.True);
        Assert.That(S(store.Get("a").Kvs.Single().Value), Is.EqualTo("then"));
    }

    [Test]
    public void MoreOperationsThanMaxTxnOpsAreRefused()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(7), new MvccStoreOptions { MaxTxnOps = 4 });
        var ok = new TxnRequest { Success = [.. Enumerable.Range(0, 4).Select(i => PutOp($"k{i}", "v"))] };
        Assert.That(store.Txn(ok).Succeeded, Is.True);
        var tooMany = new TxnRequest { Failure = [.. Enumerable.Range(0, 5).Select(i => PutOp($"k{i}", "v"))] };
        var error = Assert.ThrowsAsync<MvccException>(async () => await store.TxnAsync(tooMany))!;
        Assert.That(error.EtcdMessage, Is.EqualTo("etcdserver: too many operations in txn request"));

        // A nested txn may use what its parent left of the budget: 2 here, so 3 is too many.
        var nestedTooMany = new TxnRequest { Success = [PutOp("x", "1"), PutOp("y", "1"), RequestOp.Txn(new TxnRequest { Success = [PutOp("n1", "1"), PutOp("n2", "1"), PutOp("n3", "1")] })] };
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.TxnAsync(nestedTooMany))!.Error, Is.EqualTo(MvccError.TooManyOps));
        Assert.That(store.Revision, Is.EqualTo(2));
    }

    [Test]
    public void ATxnLargerThanMaxRequestBytesIsRefused()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(8), new MvccStoreOptions { MaxRequestBytes = 4096 });
        var big = new TxnRequest { Success = [PutOp("a", new string('x', 2000)), PutOp("b", new string('y', 2100))] };
        var error = Assert.ThrowsAsync<MvccException>(async () => await store.TxnAsync(big))!;
        Assert.That(error.EtcdMessage, Is.EqualTo("etcdserver: request is too large"));
        Assert.That(store.Revision, Is.EqualTo(1));
        Assert.That(store.Txn(new TxnRequest { Success = [PutOp("a", new string('x', 2000))] }).Succeeded, Is.True);
    }

    [Test]
    public void ARangeAtAFutureOrCompactedRevisionInTheChosenBranchRefusesTheWholeTxn()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(9));
        store.Put("a", "1");
        store.Put("a", "2");
        store.Compact(3);
        var future = new TxnRequest { Success = [PutOp("b", "1"), RequestOp.Range(new RangeRequest { Key = B("a"), Revision = 10 })] };
        Assert.ThrowsAsync<FutureRevisionException>(async () => await store.TxnAsync(future));
        var compacted = new TxnRequest { Success = [PutOp("b", "1"), RequestOp.Range(new RangeRequest { Key = B("a"), Revision = 2 })] };
        Assert.That(Assert.ThrowsAsync<RevisionCompactedException>(async () => await store.TxnAsync(compacted))!.CompactRevision, Is.EqualTo(3));
        Assert.That(store.Revision, Is.EqualTo(3));
        Assert.That(store.Get("b").Kvs, Is.Empty);

        // In the branch not taken it does not matter.
        var notTaken = new TxnRequest { Compare = [new Compare { Key = B("a"), Target = CompareTarget.Version, Result = CompareResult.Equal, Version = 99 }], Success = [RequestOp.Range(new RangeRequest { Key = B("a"), Revision = 10 })], Failure = [PutOp("b", "1")] };
        Assert.That(store.Txn(notTaken).Succeeded, Is.False);
    }

    [Test]
    public void IgnoreValueOnAMissingKeyIsRefusedAndOnAnExistingKeyKeepsTheValue()
    {
        using var store = OpenOn(new FaultInjectingFileSystem(10));
        store.LeaseGrantAsync(60, id: 1).AsTask().Wait();
        store.LeaseGrantAsync(60, id: 5).AsTask().Wait();
        var missing = new PutRequest { Key = B("a"), IgnoreValue = true, Lease = 5 };
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(missing))!.EtcdMessage, Is.EqualTo("etcdserver: key not found"));
        store.Put("a", "kept", lease: 1);
        var response = store.PutAsync(new PutRequest { Key = B("a"), IgnoreValue = true, Lease = 5, PrevKv = true }).AsTask().Result;
        Assert.That(response.PrevKv!.Lease, Is.EqualTo(1));
        var kv = store.Get("a").Kvs.Single();
        Assert.That((S(kv.Value), kv.Lease, kv.Version), Is.EqualTo(("kept", 5L, 2L)));
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Key = B("a"), IgnoreValue = true, Value = B("v") }))!.Error, Is.EqualTo(MvccError.ValueProvided));
        Assert.That(Assert.ThrowsAsync<MvccException>(async () => await store.PutAsync(new PutRequest { Key = B("a"), IgnoreLease = true, Lease = 3 }))!.Error, Is.EqualTo(MvccError.LeaseProvided));
    }
}
