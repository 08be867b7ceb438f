using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Grpc.Core;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>etcd's KV service on every member of a 3-member cluster, as an etcd client sees it.</summary>
[TestFixture]
public sealed class KvOverGrpcTests : OverGrpcFixture
{
    [Test]
    public async Task WritesOnEveryMemberAreReadLinearizablyOnEveryMember()
    {
        for (int writer = 0; writer < 3; writer++)
        {
            PutResponse put = await Clients[writer].Kv.PutAsync(new PutRequest { Key = Bytes($"kv/every/{writer}"), Value = Bytes($"from {writer}") });
            for (int reader = 0; reader < 3; reader++)
            {
                RangeResponse got = await Clients[reader].Kv.RangeAsync(new RangeRequest { Key = Bytes($"kv/every/{writer}") });
                Assert.That(got.Kvs.Single().Value.ToStringUtf8(), Is.EqualTo($"from {writer}"), $"member {reader + 1} reads member {writer + 1}'s write");
                Assert.That(got.Kvs.Single().ModRevision, Is.EqualTo(put.Header.Revision));
                Assert.That(got.Header.Revision, Is.GreaterThanOrEqualTo(put.Header.Revision), "a linearizable read is at least at the write's revision");
            }
        }
    }

    [Test]
    public async Task HeadersCarryTheClusterTheServingMemberTheRevisionAndTheTerm()
    {
        for (int i = 0; i < 3; i++)
        {
            PutResponse put = await Clients[i].Kv.PutAsync(new PutRequest { Key = Bytes("kv/header"), Value = Bytes("v") });
            Assert.That(put.Header.ClusterId, Is.EqualTo(Ours.ClusterId));
            Assert.That(put.Header.MemberId, Is.EqualTo(Ours.Members[i].Id), "the member that served the call");
            Assert.That(put.Header.Revision, Is.GreaterThan(1));
            Assert.That(put.Header.RaftTerm, Is.GreaterThan(0UL));
        }
    }

    [Test]
    public async Task RangeHonoursPrefixLimitRevisionSortAndCountOnly()
    {
        long first = 0;
        foreach (string key in new[] { "kv/r/a", "kv/r/b", "kv/r/c" })
        {
            PutResponse put = await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes(key[^1..]) });
            first = first == 0 ? put.Header.Revision : first;
        }

        RangeRequest prefix = new() { Key = Bytes("kv/r/"), RangeEnd = Bytes("kv/r0") };
        RangeResponse limited = await Clients[1].Kv.RangeAsync(new RangeRequest(prefix) { Limit = 2 });
        Assert.That(limited.Kvs.Select(kv => kv.Key.ToStringUtf8()), Is.EqualTo(new[] { "kv/r/a", "kv/r/b" }));
        Assert.That(limited.More, Is.True);
        Assert.That(limited.Count, Is.EqualTo(3));

        RangeResponse descending = await Clients[2].Kv.RangeAsync(new RangeRequest(prefix) { SortOrder = RangeRequest.Types.SortOrder.Descend, SortTarget = RangeRequest.Types.SortTarget.Mod });
        Assert.That(descending.Kvs.Select(kv => kv.Key.ToStringUtf8()), Is.EqualTo(new[] { "kv/r/c", "kv/r/b", "kv/r/a" }));

        RangeResponse past = await Clients[2].Kv.RangeAsync(new RangeRequest(prefix) { Revision = first });
        Assert.That(past.Kvs.Select(kv => kv.Key.ToStringUtf8()), Is.EqualTo(new[] { "kv/r/a" }), "as of the first put's revision");

        // Serializable: this member's own state, where the puts above were applied before they were acknowledged.
        RangeResponse counted = await Clients[0].Kv.RangeAsync(new RangeRequest(prefix) { CountOnly = true, Serializable = true });
        Assert.That(counted.Kvs, Is.Empty);
        Assert.That(counted.Count, Is.EqualTo(3));
    }

    [Test]
    public async Task TxnComparesAndAppliesOneBranchAtOneRevision()
    {
        await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("kv/txn/x"), Value = Bytes("1") });
        var txn = new TxnRequest
        {
            Compare = { new Compare { Key = Bytes("kv/txn/x"), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = Bytes("1") } },
            Success =
            {
                new RequestOp { RequestPut = new PutRequest { Key = Bytes("kv/txn/x"), Value = Bytes("2"), PrevKv = true } },
                new RequestOp { RequestPut = new PutRequest { Key = Bytes("kv/txn/y"), Value = Bytes("new") } },
                new RequestOp { RequestRange = new RangeRequest { Key = Bytes("kv/txn/x") } },
            },
            Failure = { new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Bytes("kv/txn/x") } } },
        };

        TxnResponse first = await Clients[1].Kv.TxnAsync(txn);
        Assert.That(first.Succeeded, Is.True);
        Assert.That(first.Responses[0].ResponsePut.PrevKv.Value.ToStringUtf8(), Is.EqualTo("1"));
        Assert.That(first.Responses[2].ResponseRange.Kvs.Single().Value.ToStringUtf8(), Is.EqualTo("2"), "a txn reads its own writes");
        Assert.That(first.Responses[2].ResponseRange.Kvs.Single().ModRevision, Is.EqualTo(first.Header.Revision), "both puts share the txn's revision");
        Assert.That(first.Responses[0].ResponsePut.Header.MemberId, Is.Zero, "etcd fills only the revision of a nested header");

        TxnResponse second = await Clients[2].Kv.TxnAsync(txn);
        Assert.That(second.Succeeded, Is.False, "x is 2 now");
        Assert.That(second.Responses.Single().ResponseDeleteRange.Deleted, Is.EqualTo(1));
    }

    [Test]
    public async Task DeleteRangeReturnsWhatItDeleted()
    {
        await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("kv/del/a"), Value = Bytes("1") });
        await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("kv/del/b"), Value = Bytes("2") });
        DeleteRangeResponse deleted = await Clients[2].Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes("kv/del/"), RangeEnd = Bytes("kv/del0"), PrevKv = true });
        Assert.That(deleted.Deleted, Is.EqualTo(2));
        Assert.That(deleted.PrevKvs.Select(kv => kv.Value.ToStringUtf8()), Is.EqualTo(new[] { "1", "2" }));
        Assert.That((await Clients[1].Kv.RangeAsync(new RangeRequest { Key = Bytes("kv/del/"), RangeEnd = Bytes("kv/del0") })).Count, Is.Zero);
    }

    [Test]
    public async Task ErrorsCarryEtcdsStatusCodesAndMessages()
    {
        PutResponse put = await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("kv/err"), Value = Bytes("v") });

        await AssertEtcdError(() => Clients[1].Kv.RangeAsync(new RangeRequest { Key = Bytes("kv/err"), Revision = put.Header.Revision + 1000 }).ResponseAsync,
            StatusCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision");
        await AssertEtcdError(() => Clients[1].Kv.PutAsync(new PutRequest { Value = Bytes("no key") }).ResponseAsync,
            StatusCode.InvalidArgument, "etcdserver: key is not provided");
        await AssertEtcdError(() => Clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("kv/err/none"), IgnoreValue = true }).ResponseAsync,
            StatusCode.InvalidArgument, "etcdserver: key not found");
        await AssertEtcdError(() => Clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("kv/err"), Value = Bytes("x"), Lease = 12345 }).ResponseAsync,
            StatusCode.NotFound, "etcdserver: requested lease not found");
        var duplicate = new TxnRequest
        {
            Success =
            {
                new RequestOp { RequestPut = new PutRequest { Key = Bytes("kv/dup"), Value = Bytes("1") } },
                new RequestOp { RequestPut = new PutRequest { Key = Bytes("kv/dup"), Value = Bytes("2") } },
            },
        };
        await AssertEtcdError(() => Clients[0].Kv.TxnAsync(duplicate).ResponseAsync,
            StatusCode.InvalidArgument, "etcdserver: duplicate key given in txn request");
    }

    [Test]
    public async Task CompactionThroughAnyMemberCompactsEveryMember()
    {
        PutResponse old = await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("kv/compact"), Value = Bytes("old") });
        PutResponse current = await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("kv/compact"), Value = Bytes("new") });
        CompactionResponse compacted = await Clients[1].Kv.CompactAsync(new CompactionRequest { Revision = current.Header.Revision, Physical = true });
        Assert.That(compacted.Header.Revision, Is.GreaterThanOrEqualTo(current.Header.Revision));
        foreach (EtcdClients client in Clients)
        {
            await AssertEtcdError(() => client.Kv.RangeAsync(new RangeRequest { Key = Bytes("kv/compact"), Revision = old.Header.Revision }).ResponseAsync,
                StatusCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted");
        }

        await AssertEtcdError(() => Clients[2].Kv.CompactAsync(new CompactionRequest { Revision = old.Header.Revision }).ResponseAsync,
            StatusCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted");
    }

    internal static async Task AssertEtcdError(Func<Task> call, StatusCode code, string message)
    {
        RpcException e = Assert.ThrowsAsync<RpcException>(async () => await call())!;
        Assert.That(e.StatusCode, Is.EqualTo(code), e.Status.Detail);
        Assert.That(e.Status.Detail, Is.EqualTo(message));
    }
}
