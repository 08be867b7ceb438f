using EmbeddedRaft.Simulation.Tests.Linearizability;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>
/// The model's etcd semantics beyond plain puts and gets, each rule with a history that keeps it (the
/// checker finds a witness the model replays) and one that breaks exactly it (the checker rejects it):
/// reads at past revisions, compaction, limits, keys-only, count-only, prev_kv, leases and their expiry.
/// </summary>
public sealed class EtcdKvModelExtensionTests
{
    private static EtcdKvModel Model => EtcdKvModel.WithHistory;

    [Test]
    public void A_read_at_a_past_revision_sees_the_keys_as_they_were_and_the_current_header_revision()
    {
        Pass(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("a", "2"), Written(3)),
            Op(4, 5, EtcdKvRequest.GetAt("a", 2), Read(3, Kv("a", "1", 2, 2, 1))),
            Op(6, 7, EtcdKvRequest.GetAt("a", 1), Read(3)));

        Fail(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("a", "2"), Written(3)),
            Op(4, 5, EtcdKvRequest.GetAt("a", 2), Read(3, Kv("a", "2", 2, 3, 2))));
    }

    [Test]
    public void A_read_above_the_current_revision_answers_future_revision()
    {
        Pass(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.GetAt("a", 3), EtcdKvResponse.Failure(EtcdKvError.FutureRevision)));

        // Revision 2 exists: refusing it as a future revision is a lie.
        Fail(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.GetAt("a", 2), EtcdKvResponse.Failure(EtcdKvError.FutureRevision)));
    }

    [Test]
    public void After_a_compaction_reads_below_it_answer_compacted_and_reads_at_it_still_work()
    {
        Pass(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("a", "2"), Written(3)),
            Op(4, 5, EtcdKvRequest.Compact(3), Empty(3)),
            Op(6, 7, EtcdKvRequest.GetAt("a", 2), EtcdKvResponse.Failure(EtcdKvError.Compacted)),
            Op(8, 9, EtcdKvRequest.GetAt("a", 3), Read(3, Kv("a", "2", 2, 3, 2))),
            Op(10, 11, EtcdKvRequest.Compact(3), EtcdKvResponse.Failure(EtcdKvError.Compacted)),
            Op(12, 13, EtcdKvRequest.Compact(4), EtcdKvResponse.Failure(EtcdKvError.FutureRevision)));

        // Before the compaction, revision 2 is readable: "compacted" is a lie.
        Fail(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("a", "2"), Written(3)),
            Op(4, 5, EtcdKvRequest.GetAt("a", 2), EtcdKvResponse.Failure(EtcdKvError.Compacted)),
            Op(6, 7, EtcdKvRequest.Compact(3), Empty(3)));

        // After it, revision 2 is gone: an answer from it is a lie.
        Fail(
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("a", "2"), Written(3)),
            Op(4, 5, EtcdKvRequest.Compact(3), Empty(3)),
            Op(6, 7, EtcdKvRequest.GetAt("a", 2), Read(3, Kv("a", "1", 2, 2, 1))));
    }

    [Test]
    public void A_model_without_history_refuses_past_reads_instead_of_guessing()
    {
        var history = new[] { Op(0, 1, EtcdKvRequest.GetAt("a", 1), Read(1)) };
        Assert.That(() => LinearizabilityChecker.Check(EtcdKvModel.Instance, history), Throws.ArgumentException.With.Message.Contains("keeps no history"));
    }

    [Test]
    public void A_limited_read_returns_the_first_keys_with_the_count_of_all_and_more()
    {
        EtcdKvRequest limited = EtcdKvRequest.Of(EtcdKvOperation.Range("a", "\0") with { Limit = 2 });
        EtcdKvOperation[] setup = [EtcdKvOperation.Put("a", "1"), EtcdKvOperation.Put("b", "1"), EtcdKvOperation.Put("c", "1")];
        var puts = setup.Select((put, i) => Op(i * 2, (i * 2) + 1, EtcdKvRequest.Of(put), Written(i + 2))).ToArray();
        Pass([.. puts, Op(10, 11, limited, Response(4, new EtcdKvOperationResult([Kv("a", "1", 2, 2, 1), Kv("b", "1", 3, 3, 1)], 0) { Count = 3, More = true }))]);

        // The count is of every key in range, not of those returned.
        Fail([.. puts, Op(10, 11, limited, Response(4, new EtcdKvOperationResult([Kv("a", "1", 2, 2, 1), Kv("b", "1", 3, 3, 1)], 0) { Count = 2, More = true }))]);

        // Without "more", a client would think it has everything.
        Fail([.. puts, Op(10, 11, limited, Response(4, new EtcdKvOperationResult([Kv("a", "1", 2, 2, 1), Kv("b", "1", 3, 3, 1)], 0) { Count = 3 }))]);
    }

    [Test]
    public void Keys_only_drops_the_values_and_count_only_drops_the_keys()
    {
        var put = Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2));
        EtcdKvRequest keysOnly = EtcdKvRequest.Of(EtcdKvOperation.Get("a") with { KeysOnly = true });
        EtcdKvRequest countOnly = EtcdKvRequest.Of(EtcdKvOperation.Range("a", "\0") with { CountOnly = true });
        Pass(put,
            Op(2, 3, keysOnly, Read(2, Kv("a", "", 2, 2, 1))),
            Op(4, 5, countOnly, Response(2, new EtcdKvOperationResult([], 0) { Count = 1 })));

        Fail(put, Op(2, 3, keysOnly, Read(2, Kv("a", "1", 2, 2, 1))));
        Fail(put, Op(4, 5, countOnly, Response(2, new EtcdKvOperationResult([], 0) { Count = 0 })));
    }

    [Test]
    public void Prev_kv_returns_the_key_as_it_was_before_a_put_or_a_delete()
    {
        EtcdKvRequest overwrite = EtcdKvRequest.Of(EtcdKvOperation.Put("a", "2") with { PrevKv = true });
        EtcdKvRequest delete = EtcdKvRequest.Of(EtcdKvOperation.Delete("a") with { PrevKv = true });
        var first = Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2));
        Pass(first,
            Op(2, 3, overwrite, Response(3, EtcdKvOperationResult.PutDone with { PrevKvs = [Kv("a", "1", 2, 2, 1)] })),
            Op(4, 5, delete, Response(4, new EtcdKvOperationResult([], 1) { PrevKvs = [Kv("a", "2", 2, 3, 2)] })));

        // The previous key of the overwrite is the first put's, with its revisions.
        Fail(first, Op(2, 3, overwrite, Response(3, EtcdKvOperationResult.PutDone with { PrevKvs = [Kv("a", "1", 2, 3, 1)] })));

        // A put of a new key has no previous key.
        Fail(Op(2, 3, overwrite, Response(2, EtcdKvOperationResult.PutDone with { PrevKvs = [Kv("a", "1", 2, 2, 1)] })));
    }

    [Test]
    public void A_lease_is_granted_with_its_minimum_ttl_kept_alive_and_its_revocation_deletes_its_keys_at_one_revision()
    {
        Pass(
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 1), LeaseAnswer(1, 7, EtcdKvModel.DefaultMinLeaseTtlSeconds)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
            Op(4, 5, EtcdKvRequest.PutWithLease("b", "1", 7), Written(3)),
            Op(6, 7, EtcdKvRequest.Put("c", "1"), Written(4)),
            Op(8, 9, EtcdKvRequest.LeaseKeepAlive(7), LeaseAnswer(4, 7, EtcdKvModel.DefaultMinLeaseTtlSeconds)),
            Op(10, 11, EtcdKvRequest.Get("a"), Read(4, Kv("a", "1", 2, 2, 1, lease: 7))),
            Op(12, 13, EtcdKvRequest.LeaseRevoke(7), Empty(5)),
            Op(14, 15, EtcdKvRequest.Range("a", "\0"), Read(5, Kv("c", "1", 4, 4, 1))),
            Op(16, 17, EtcdKvRequest.LeaseKeepAlive(7), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
            Op(18, 19, EtcdKvRequest.LeaseRevoke(7), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
            Op(20, 21, EtcdKvRequest.PutWithLease("a", "2", 7), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
            Op(22, 23, EtcdKvRequest.LeaseGrant(8, 60), LeaseAnswer(5, 8, 60)),
            Op(24, 25, EtcdKvRequest.LeaseGrant(8, 60), EtcdKvResponse.Failure(EtcdKvError.LeaseExists)),
            Op(26, 27, EtcdKvRequest.LeaseRevoke(8), Empty(5)));

        // The revoke deleted both keys at one revision: two revisions is wrong.
        Fail(
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
            Op(4, 5, EtcdKvRequest.PutWithLease("b", "1", 7), Written(3)),
            Op(6, 7, EtcdKvRequest.LeaseRevoke(7), Empty(5)));

        // A revoked lease's key is gone.
        Fail(
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
            Op(4, 5, EtcdKvRequest.LeaseRevoke(7), Empty(3)),
            Op(6, 7, EtcdKvRequest.Get("a"), Read(3, Kv("a", "1", 2, 2, 1, lease: 7))));

        // A keep-alive after the revocation finds nothing.
        Fail(
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.LeaseRevoke(7), Empty(1)),
            Op(4, 5, EtcdKvRequest.LeaseKeepAlive(7), LeaseAnswer(1, 7, 60)));

        // A keep-alive of a lease never granted finds nothing either.
        Fail(Op(0, 1, EtcdKvRequest.LeaseKeepAlive(9), LeaseAnswer(1, 9, 60)));
    }

    [Test]
    public void An_expiry_recorded_as_indeterminate_explains_keys_vanishing_at_one_revision_after_the_grant()
    {
        var expiry = Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(99, 0, EtcdKvRequest.LeaseExpiry(7));
        Pass(
            expiry,
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
            Op(4, 5, EtcdKvRequest.PutWithLease("b", "1", 7), Written(3)),
            Op(10, 11, EtcdKvRequest.Put("c", "1"), Written(5)),
            Op(12, 13, EtcdKvRequest.Range("a", "\0"), Read(5, Kv("c", "1", 5, 5, 1))),
            Op(14, 15, EtcdKvRequest.LeaseKeepAlive(7), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)));

        // An expiry never happened: the lease and its keys are still there.
        Pass(
            expiry,
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
            Op(4, 5, EtcdKvRequest.Get("a"), Read(2, Kv("a", "1", 2, 2, 1, lease: 7))));

        // An expiry deletes the lease's keys at ONE revision: one key gone while the other stays is not an expiry.
        Fail(
            expiry,
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
            Op(4, 5, EtcdKvRequest.PutWithLease("b", "1", 7), Written(3)),
            Op(12, 13, EtcdKvRequest.Range("a", "\0"), Read(4, Kv("b", "1", 3, 3, 1, lease: 7))));

        // Nor can an expiry explain a key of another lease vanishing.
        Fail(
            expiry,
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(0, 1, EtcdKvRequest.LeaseGrant(8, 60), LeaseAnswer(1, 8, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 8), Written(2)),
            Op(12, 13, EtcdKvRequest.Get("a"), Read(3)));
    }

    [Test]
    public void A_transaction_can_compare_a_keys_lease()
    {
        var ifLeased = new EtcdKvRequest([new EtcdCompare("a", EtcdCompareTarget.Lease, EtcdCompareResult.Equal, Number: 7)], [EtcdKvOperation.Delete("a")], [EtcdKvOperation.Get("a")]);
        var grant = Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60));
        var put = Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2));
        Pass(grant, put, Op(4, 5, ifLeased, Response(3, new EtcdKvOperationResult([], 1))));
        Fail(grant, Op(2, 3, EtcdKvRequest.Put("a", "1"), Written(2)), Op(4, 5, ifLeased, Response(3, new EtcdKvOperationResult([], 1))));
    }

    [Test]
    public void A_state_read_from_a_store_is_validated()
    {
        Assert.That(() => EtcdKvState.Create(5, compactRevision: 6), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("compactRevision"));
        Assert.That(() => EtcdKvState.Create(5, 0, [Kv("a", "1", 2, 6, 1)]), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("does not fit a store at revision 5"));
        Assert.That(() => EtcdKvState.Create(5, 0, [Kv("a", "1", 2, 2, 1, lease: 7)]), Throws.ArgumentException.With.Message.Contains("lease 7, which is not among the leases"));
        Assert.That(() => EtcdKvState.Create(5, 0, [Kv("a", "1", 2, 2, 1), Kv("a", "2", 3, 3, 1)]), Throws.ArgumentException.With.Message.Contains("given twice"));
        Assert.That(EtcdKvState.Create(5, 2, [Kv("a", "1", 2, 2, 1, lease: 7)], [new(7, 60)]).ToString(), Is.EqualTo("rev 5 compacted@2 {a=1@c2/m2/v1/l7} leases {7 ttl 60}"));
    }

    [Test]
    public void A_put_with_an_unknown_lease_fails_the_whole_transaction()
    {
        var txn = new EtcdKvRequest([], [EtcdKvOperation.Put("a", "1"), EtcdKvOperation.Put("b", "1") with { Lease = 5 }], []);
        Pass(
            Op(0, 1, txn, EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
            Op(2, 3, EtcdKvRequest.Get("a"), Read(1)));

        Fail(
            Op(0, 1, txn, EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
            Op(2, 3, EtcdKvRequest.Get("a"), Read(2, Kv("a", "1", 2, 2, 1))));
    }

    internal static void Pass(params Operation<EtcdKvRequest, EtcdKvResponse>[] history) =>
        WitnessVerifier.VerifyWitness(Model, history, LinearizabilityChecker.Check(Model, history));

    internal static void Fail(params Operation<EtcdKvRequest, EtcdKvResponse>[] history)
    {
        var result = LinearizabilityChecker.Check(Model, history);
        WitnessVerifier.VerifyCounterexample(Model, result);
        TestContext.Out.WriteLine(result.Explanation);
    }

    internal static Operation<EtcdKvRequest, EtcdKvResponse> Op(long invoke, long complete, EtcdKvRequest request, EtcdKvResponse response) =>
        Operation.Completed(0, invoke, complete, request, response);

    internal static EtcdKeyValue Kv(string key, string value, long create, long mod, long version, long lease = 0) => new(key, value, create, mod, version, lease);

    internal static EtcdKvResponse Written(long revision) => new(revision, true, [EtcdKvOperationResult.PutDone]);

    internal static EtcdKvResponse Empty(long revision) => new(revision, true, []);

    internal static EtcdKvResponse Read(long revision, params EtcdKeyValue[] kvs) => new(revision, true, [new EtcdKvOperationResult(kvs, 0)]);

    internal static EtcdKvResponse Response(long revision, EtcdKvOperationResult result) => new(revision, true, [result]);

    internal static EtcdKvResponse LeaseAnswer(long revision, long lease, long ttl) => new(revision, true, [EtcdKvOperationResult.LeaseAnswer(lease, ttl)]);
}
