using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;
using static EmbeddedRaft.Simulation.Tests.Checkers.WatchCheckerTests;
using static EmbeddedRaft.Simulation.Tests.Checkers.WatchFixtures;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>
/// The lease checker on a hand-written run: lease 7 holds a and b and is revoked by a client; lease 8
/// holds d and expires (the leader's revocation, seen only in the committed history and in a keep-alive
/// answering not found). The correct run passes; each rule broken alone is caught.
/// </summary>
public sealed class LeaseCheckerTests
{
    private static readonly CommittedEvent[] s_committed =
    [
        CommittedEvent.Put(Kv("a", "1", 2, 2, 1, lease: 7)),
        CommittedEvent.Put(Kv("b", "1", 3, 3, 1, lease: 7)),
        CommittedEvent.Put(Kv("c", "1", 4, 4, 1)),
        CommittedEvent.Delete("a", 5, Kv("a", "1", 2, 2, 1, lease: 7)),
        CommittedEvent.Delete("b", 5, Kv("b", "1", 3, 3, 1, lease: 7)),
        CommittedEvent.Put(Kv("d", "1", 6, 6, 1, lease: 8)),
        CommittedEvent.Delete("d", 7, Kv("d", "1", 6, 6, 1, lease: 8)),
    ];

    private static readonly Operation<EtcdKvRequest, EtcdKvResponse>[] s_history =
    [
        Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
        Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),
        Op(4, 5, EtcdKvRequest.PutWithLease("b", "1", 7), Written(3)),
        Op(6, 7, EtcdKvRequest.Put("c", "1"), Written(4)),
        Op(8, 9, EtcdKvRequest.Get("a"), Read(4, Kv("a", "1", 2, 2, 1, lease: 7))),
        Op(10, 11, EtcdKvRequest.LeaseRevoke(7), new EtcdKvResponse(5, true, [])),
        Op(12, 13, EtcdKvRequest.Range("a", "\0"), Read(5, Kv("c", "1", 4, 4, 1))),
        Op(14, 15, EtcdKvRequest.LeaseKeepAlive(7), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
        Op(16, 17, EtcdKvRequest.LeaseGrant(8, 2), LeaseAnswer(5, 8, 2)),
        Op(18, 19, EtcdKvRequest.PutWithLease("d", "1", 8), Written(6)),
        Op(20, 21, EtcdKvRequest.GetAt("d", 6), Read(7, Kv("d", "1", 6, 6, 1, lease: 8))),
        Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(99, 16, EtcdKvRequest.LeaseExpiry(8)),
        Op(30, 31, EtcdKvRequest.LeaseKeepAlive(8), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
    ];

    private static ReferenceHistory Reference(IEnumerable<CommittedEvent>? events = null) => ReferenceHistory.FromEvents(1, 7, events ?? s_committed);

    [Test]
    public void A_run_where_revoked_and_expired_leases_take_their_keys_with_them_passes()
    {
        var result = LeaseChecker.Check(Reference(), s_history);
        Assert.That(result.Passed, result.ToString());
        Assert.That(result.Summary, Does.Contain("2 leases granted, 1 revocations acknowledged, 2 leases seen gone, 2 leased keys read"));

        // The run is linearizable too, expiry and all.
        var linearizable = LinearizabilityChecker.Check(EtcdKvModel.WithHistory, s_history);
        Assert.That(linearizable.Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable), linearizable.Explanation);
    }

    [Test]
    public void A_key_of_a_revoked_lease_read_at_or_after_the_revocation_is_caught()
    {
        // A serializable read on a member that applied the revocation (revision 5) yet still showed a.
        var stale = Op(12, 13, EtcdKvRequest.Get("a"), Read(5, Kv("a", "1", 2, 2, 1, lease: 7)));
        AssertCaught(LeaseChecker.Check(Reference(), [.. s_history, stale]), "lease.visible-after-revoke", "revoked at revision 5");

        // The expired lease 8: its key read at revision 7, where the committed history deleted it.
        var resurrected = Op(32, 33, EtcdKvRequest.Get("d"), Read(7, Kv("d", "1", 6, 6, 1, lease: 8)));
        AssertCaught(LeaseChecker.Check(Reference(), [.. s_history, resurrected]), "lease.visible-after-revoke", "lease 8 is gone");
    }

    [Test]
    public void A_leased_key_read_differently_from_the_committed_history_is_caught()
    {
        var wrongLease = Op(6, 7, EtcdKvRequest.Get("a"), Read(3, Kv("a", "1", 2, 2, 1, lease: 8)));
        AssertCaught(LeaseChecker.Check(Reference(), [.. s_history, wrongLease]), "lease.read-vs-history", "a=1@c2/m2/v1/l7");
    }

    [Test]
    public void A_revocation_that_does_not_delete_all_its_keys_at_one_revision_is_caught()
    {
        CommittedEvent[] split =
        [
            .. s_committed.Take(4),
            CommittedEvent.Delete("b", 6, Kv("b", "1", 3, 3, 1, lease: 7)),
            CommittedEvent.Put(Kv("d", "1", 7, 7, 1, lease: 8)),
            CommittedEvent.Delete("d", 8, Kv("d", "1", 7, 7, 1, lease: 8)),
        ];
        AssertCaught(LeaseChecker.Check(ReferenceHistory.FromEvents(1, 8, split), s_history), "lease.revoke-deletes", "keys of lease 7 remain at revision 5: b=1@c3/m3/v1/l7");
    }

    [Test]
    public void Keys_that_outlive_their_lease_are_caught()
    {
        // Lease 8 answered not found, but d was never deleted.
        AssertCaught(LeaseChecker.Check(ReferenceHistory.FromEvents(1, 6, s_committed.Take(6)), s_history), "lease.keys-outlive-lease", "lease 8 is gone", "d=1");
    }

    [Test]
    public void A_keep_alive_or_a_put_with_a_lease_after_its_revocation_must_not_succeed()
    {
        var keptAlive = Op(40, 41, EtcdKvRequest.LeaseKeepAlive(7), LeaseAnswer(7, 7, 60));
        AssertCaught(LeaseChecker.Check(Reference(), [.. s_history, keptAlive]), "lease.keep-alive-after-revoke", "lease 7 was gone before it began");

        var attached = Op(40, 41, EtcdKvRequest.PutWithLease("e", "1", 8), Written(8));
        AssertCaught(LeaseChecker.Check(ReferenceHistory.FromEvents(1, 8, [.. s_committed, CommittedEvent.Put(Kv("e", "1", 8, 8, 1, lease: 8))]), [.. s_history, attached]),
            "lease.put-after-revoke", "lease 8 was gone before it began");
    }

    [Test]
    public void Lease_not_found_before_the_grant_completed_proves_nothing()
    {
        // The keep-alive may have applied before the concurrent grant: not a sign the lease is gone.
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            Op(0, 10, EtcdKvRequest.LeaseGrant(9, 60), LeaseAnswer(1, 9, 60)),
            Op(1, 2, EtcdKvRequest.LeaseKeepAlive(9), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)),
            Op(11, 12, EtcdKvRequest.LeaseKeepAlive(9), LeaseAnswer(1, 9, 60)),
        ];
        var result = LeaseChecker.Check(ReferenceHistory.FromEvents(1, 1, []), history);
        Assert.That(result.Passed, result.ToString());

        // Asked after the grant completed, it does.
        var after = Op(13, 14, EtcdKvRequest.LeaseKeepAlive(9), EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound));
        var alive = Op(15, 16, EtcdKvRequest.LeaseKeepAlive(9), LeaseAnswer(1, 9, 60));
        AssertCaught(LeaseChecker.Check(ReferenceHistory.FromEvents(1, 1, []), [.. history, after, alive]), "lease.keep-alive-after-revoke");
    }

    [Test]
    public void The_committed_history_attaching_a_key_to_a_revoked_lease_is_caught()
    {
        CommittedEvent[] after = [.. s_committed, CommittedEvent.Put(Kv("e", "1", 8, 8, 1, lease: 7))];
        AssertCaught(LeaseChecker.Check(ReferenceHistory.FromEvents(1, 8, after), s_history), "lease.put-after-revoke", "attaches a key to lease 7 at revision 8");
    }

    private static Operation<EtcdKvRequest, EtcdKvResponse> Op(long invoke, long complete, EtcdKvRequest request, EtcdKvResponse response) =>
        Operation.Completed(0, invoke, complete, request, response);

    private static EtcdKvResponse Written(long revision) => new(revision, true, [EtcdKvOperationResult.PutDone]);

    private static EtcdKvResponse Read(long revision, params EtcdKeyValue[] kvs) => new(revision, true, [new EtcdKvOperationResult(kvs, 0)]);

    private static EtcdKvResponse LeaseAnswer(long revision, long lease, long ttl) => new(revision, true, [EtcdKvOperationResult.LeaseAnswer(lease, ttl)]);
}
