using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;
using static EmbeddedRaft.Simulation.Tests.Checkers.WatchFixtures;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>
/// The watch checker on a hand-written history (a=1, b=1 with lease 7, a=2, delete a, the lease's
/// revocation deleting b): correct streams pass, and each rule broken alone is caught and named.
/// </summary>
public sealed class WatchCheckerTests
{
    private static readonly CommittedEvent[] s_committed =
    [
        CommittedEvent.Put(Kv("a", "1", 2, 2, 1)),
        CommittedEvent.Put(Kv("b", "1", 3, 3, 1, lease: 7)),
        CommittedEvent.Put(Kv("a", "2", 2, 4, 2), Kv("a", "1", 2, 2, 1)),
        CommittedEvent.Delete("a", 5, Kv("a", "2", 2, 4, 2)),
        CommittedEvent.Delete("b", 6, Kv("b", "1", 3, 3, 1, lease: 7)),
    ];

    private static ReferenceHistory Reference => ReferenceHistory.FromEvents(1, 6, s_committed);

    [Test]
    public void Whole_keyspace_watchers_that_agree_make_a_sound_reference()
    {
        var (reference, soundness) = ReferenceHistory.FromWatchers([Whole(s_committed, "ref1", 6), Whole(s_committed, "ref2", 4, member: 2), Whole(s_committed, "ref3", 6, start: 3, member: 3)]);
        Assert.That(soundness.Passed, soundness.ToString());
        Assert.That((reference.StartRevision, reference.CoveredThrough), Is.EqualTo((1L, 6L)));
        Assert.That(reference.Events, Is.EqualTo(s_committed));
        Assert.That(reference.KeysAt(4)!.Values, Is.EqualTo(new[] { Kv("a", "2", 2, 4, 2), Kv("b", "1", 3, 3, 1, lease: 7) }));
    }

    [Test]
    public void Whole_keyspace_watchers_that_disagree_are_caught()
    {
        WatchObservation liar = Whole(s_committed, "ref2", 4, member: 2);
        liar = liar.WithResponses([.. liar.Responses.Select(r => r.HeaderRevision == 4 && !r.IsProgressNotify ? r with { Events = [CommittedEvent.Put(Kv("a", "X", 2, 4, 2), Kv("a", "1", 2, 2, 1))] } : r)]);
        var (_, soundness) = ReferenceHistory.FromWatchers([Whole(s_committed, "ref1", 6), liar]);
        Assert.That(Rules(soundness), Is.EqualTo(new[] { "reference.disagree" }), soundness.ToString());
        Assert.That(soundness.ToString(), Does.Contain("revision 4").And.Contain("a=X"));
    }

    [Test]
    public void A_reference_with_a_revision_without_events_or_a_span_nobody_covered_is_caught()
    {
        CommittedEvent[] skipping = [.. s_committed.Where(e => e.Revision != 4)];
        var (_, contiguous) = ReferenceHistory.FromWatchers([Whole(skipping, "ref1", 6)]);
        Assert.That(Rules(contiguous), Does.Contain("reference.contiguous"), contiguous.ToString());

        var (_, hole) = ReferenceHistory.FromWatchers([Whole(s_committed, "ref1", 3), Whole(s_committed, "ref2", 6, start: 5)]);
        Assert.That(Rules(hole), Is.EqualTo(new[] { "reference.hole" }), hole.ToString());
    }

    [Test]
    public void A_reference_whose_events_contradict_the_keys_before_them_is_caught()
    {
        // The second put of a claims version 1 and no previous key.
        CommittedEvent[] wrong = [.. s_committed.Select(e => e.Revision == 4 ? CommittedEvent.Put(Kv("a", "2", 4, 4, 1)) : e)];
        var (_, soundness) = ReferenceHistory.FromWatchers([Whole(wrong, "ref1", 6)]);
        Assert.That(Rules(soundness), Is.EqualTo(new[] { "reference.inconsistent" }), soundness.ToString());
    }

    [Test]
    public void Correct_watchers_of_keys_ranges_with_filters_and_prev_kv_and_a_resumed_one_pass()
    {
        WatchObservation[] watchers =
        [
            Observe(s_committed, "w1", "a", null, 2, 6, prevKv: true),
            Observe(s_committed, "w2", "a", "c", 4, 6),
            Observe(s_committed, "w3", "a", "\0", 1, 6, noDelete: true),
            Observe(s_committed, "w4", "b", null, 1, 6, noPut: true, prevKv: true),
            Observe(s_committed, "w5.1", "a", "\0", 1, 3, end: WatchEnd.MemberStopped),
            Observe(s_committed, "w5.2", "a", "\0", 4, 6) with { ResumedFrom = "w5.1" },
        ];
        var result = WatchChecker.Check(Reference, watchers);
        Assert.That(result.Passed, result.ToString());
        Assert.That(result.Summary, Does.Contain("6 watch streams"));
    }

    [Test]
    public void A_dropped_event_is_a_gap()
    {
        WatchObservation watch = Observe(s_committed, "w1", "a", "\0", 1, 6);
        watch = watch.WithResponses([.. watch.Responses.Where(r => r.HeaderRevision != 4)]);
        AssertCaught(WatchChecker.Check(Reference, [watch]), "watch.gap", "w1", "revision 4", "expected PUT a=2");
    }

    [Test]
    public void An_event_delivered_twice_is_a_duplicate()
    {
        WatchObservation watch = Observe(s_committed, "w1", "a", "\0", 1, 6);
        watch = watch.WithResponses([.. watch.Responses.Take(3), watch.Responses[2], .. watch.Responses.Skip(3)]);
        AssertCaught(WatchChecker.Check(Reference, [watch]), "watch.duplicate", "w1");
    }

    [Test]
    public void Responses_out_of_order_are_caught()
    {
        WatchObservation watch = Observe(s_committed, "w1", "a", "\0", 1, 6);
        watch = watch.WithResponses([watch.Responses[1], watch.Responses[0], .. watch.Responses.Skip(2)]);
        AssertCaught(WatchChecker.Check(Reference, [watch]), "watch.order", "w1");
    }

    [Test]
    public void An_event_before_the_start_revision_or_a_header_going_back_is_caught()
    {
        WatchObservation early = Observe(s_committed, "w1", "a", null, 4, 6).WithResponses(
            new WatchResponseObservation(2, [s_committed[0]]), new WatchResponseObservation(4, [s_committed[2].WithoutPrevKv()]), new WatchResponseObservation(6, [s_committed[3].WithoutPrevKv()]));
        AssertCaught(WatchChecker.Check(Reference, [early]), "watch.before-start", "before the start revision 4");

        WatchObservation back = Observe(s_committed, "w1", "a", null, 1, 6);
        back = back.WithResponses([.. back.Responses, new WatchResponseObservation(5, [])]);
        AssertCaught(WatchChecker.Check(Reference, [back]), "watch.order", "header revision 5 after 6 (went back)");
    }

    [Test]
    public void A_wrong_value_a_stray_prev_kv_or_an_ignored_filter_is_a_mismatch()
    {
        WatchObservation watch = Observe(s_committed, "w1", "a", null, 1, 6);
        var wrongValue = watch.WithResponses([.. watch.Responses.Select(r => r.HeaderRevision == 4 ? r with { Events = [CommittedEvent.Put(Kv("a", "3", 2, 4, 2))] } : r)]);
        AssertCaught(WatchChecker.Check(Reference, [wrongValue]), "watch.mismatch", "revision 4", "seen PUT a=3");

        var strayPrev = watch.WithResponses([.. watch.Responses.Select(r => r.HeaderRevision == 4 ? r with { Events = [s_committed[2]] } : r)]);
        AssertCaught(WatchChecker.Check(Reference, [strayPrev]), "watch.mismatch", "prev=");

        WatchObservation noDelete = Observe(s_committed, "w2", "a", null, 1, 6, noDelete: true);
        noDelete = noDelete.WithResponses([.. noDelete.Responses.Take(2), new WatchResponseObservation(5, [s_committed[3].WithoutPrevKv()]), .. noDelete.Responses.Skip(2)]);
        AssertCaught(WatchChecker.Check(Reference, [noDelete]), "watch.extra", "w2", "revision 5");
    }

    [Test]
    public void A_progress_notification_past_an_event_never_delivered_is_a_gap()
    {
        // The header promises every event through 6 was delivered; the delete at 5 never was.
        WatchObservation watch = Observe(s_committed, "w1", "a", null, 1, 4).WithResponses(
            new WatchResponseObservation(2, [s_committed[0]]), new WatchResponseObservation(4, [s_committed[2].WithoutPrevKv()]), new WatchResponseObservation(6, []));
        AssertCaught(WatchChecker.Check(Reference, [watch]), "watch.gap", "revision 5");
    }

    [Test]
    public void A_resume_that_skips_or_repeats_revisions_is_caught()
    {
        WatchObservation first = Observe(s_committed, "w1.1", "a", "\0", 1, 3, end: WatchEnd.Cancelled);
        WatchObservation skipping = Observe(s_committed, "w1.2", "a", "\0", 5, 6) with { ResumedFrom = "w1.1" };
        AssertCaught(WatchChecker.Check(Reference, [first, skipping]), "watch.resume", "a gap");

        WatchObservation repeating = Observe(s_committed, "w1.2", "a", "\0", 3, 6) with { ResumedFrom = "w1.1" };
        AssertCaught(WatchChecker.Check(Reference, [first, repeating]), "watch.resume", "duplicates");

        WatchObservation orphan = Observe(s_committed, "w1.2", "a", "\0", 4, 6) with { ResumedFrom = "w0" };
        AssertCaught(WatchChecker.Check(Reference, [orphan]), "watch.resume", "not observed");
    }

    [Test]
    public void Compacted_is_only_told_to_a_watcher_that_needed_a_compacted_revision()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history = [Operation.Completed(0, 0, 1, EtcdKvRequest.Compact(4), new EtcdKvResponse(6, true, []))];
        WatchObservation fair = Observe(s_committed, "w1", "a", "\0", 1, 2, end: WatchEnd.Compacted) with { CompactRevision = 4 };
        Assert.That(WatchChecker.Check(Reference, [fair], history).Passed);

        // It had everything through 4, needed 5 next: compaction at 4 did not stop it.
        WatchObservation unfair = Observe(s_committed, "w1", "a", "\0", 1, 4, end: WatchEnd.Compacted) with { CompactRevision = 4 };
        AssertCaught(WatchChecker.Check(Reference, [unfair], history), "watch.compacted", "needed revision 5");

        WatchObservation invented = Observe(s_committed, "w1", "a", "\0", 1, 2, end: WatchEnd.Compacted) with { CompactRevision = 3 };
        AssertCaught(WatchChecker.Check(Reference, [invented], history), "watch.compacted", "no client asked");
    }

    [Test]
    public void A_prev_kv_is_only_allowed_missing_at_or_below_a_requested_compaction()
    {
        // etcd reads prev_kv at the event's revision - 1 when it sends the event and leaves it out when
        // that is compacted by then (v3rpc watch.go sendLoop; etcd-io/etcd#10681): a stream that sent
        // revisions 4 and 5 after a compaction at 5 lacks their prev_kvs, another sent them before.
        Operation<EtcdKvRequest, EtcdKvResponse>[] history = [Operation.Completed(0, 0, 1, EtcdKvRequest.Compact(5), new EtcdKvResponse(6, true, []))];
        WatchObservation late = Whole([.. s_committed.Select(e => e.Revision is 4 or 5 ? e.WithoutPrevKv() : e)], "ref2", 6, member: 2);
        var (reference, soundness) = ReferenceHistory.FromWatchers([late, Whole(s_committed, "ref1", 6)], history);
        Assert.That(soundness.Passed, soundness.ToString());
        Assert.That(reference.Events, Is.EqualTo(s_committed), "the reference keeps the prev_kvs one stream had");
        Assert.That(WatchChecker.Check(reference, [late], history).Passed);

        // Alone, the late stream is a sound reference too (the keys before are known without them).
        var (_, alone) = ReferenceHistory.FromWatchers([late], history);
        Assert.That(alone.Passed, alone.ToString());

        // Without that compaction, or above it, a missing prev_kv is a fault.
        var (_, uncompacted) = ReferenceHistory.FromWatchers([late, Whole(s_committed, "ref1", 6)]);
        Assert.That(Rules(uncompacted), Does.Contain("reference.disagree"), uncompacted.ToString());
        Operation<EtcdKvRequest, EtcdKvResponse>[] lower = [Operation.Completed(0, 0, 1, EtcdKvRequest.Compact(4), new EtcdKvResponse(6, true, []))];
        AssertCaught(WatchChecker.Check(Reference, [late], lower), "watch.mismatch", "revision 5");
    }

    [Test]
    public void Every_acknowledged_write_is_in_the_reference_at_its_revision_and_nothing_else_is_there()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] acknowledged =
        [
            Operation.Completed(0, 0, 1, EtcdKvRequest.Put("a", "1"), new EtcdKvResponse(2, true, [EtcdKvOperationResult.PutDone])),
            Operation.Completed(0, 2, 3, EtcdKvRequest.PutWithLease("b", "1", 7), new EtcdKvResponse(3, true, [EtcdKvOperationResult.PutDone])),
            Operation.Completed(0, 4, 5, EtcdKvRequest.CompareValueAndPut("a", "1", "2"), new EtcdKvResponse(4, true, [EtcdKvOperationResult.PutDone])),
            Operation.Completed(0, 6, 7, EtcdKvRequest.Delete("a"), new EtcdKvResponse(5, true, [new EtcdKvOperationResult([], 1)])),
            Operation.Completed(0, 8, 9, EtcdKvRequest.Delete("zz"), new EtcdKvResponse(6, true, [new EtcdKvOperationResult([], 0)])),
        ];
        var result = WatchChecker.CheckAcknowledgedWrites(Reference, acknowledged);
        Assert.That(result.Passed, result.ToString());
        Assert.That(result.Summary, Does.StartWith("4 acknowledged writes"));

        var wrongRevision = WatchChecker.CheckAcknowledgedWrites(Reference, [Operation.Completed(0, 0, 1, EtcdKvRequest.Put("a", "2"), new EtcdKvResponse(2, true, [EtcdKvOperationResult.PutDone]))]);
        AssertCaught(wrongRevision, "ack.mismatch", "revision 2", "PUT a=1");

        var lost = WatchChecker.CheckAcknowledgedWrites(Reference, [Operation.Completed(0, 10, 11, EtcdKvRequest.Put("c", "1"), new EtcdKvResponse(7, true, [EtcdKvOperationResult.PutDone]))]);
        AssertCaught(lost, "ack.missing", "ends at revision 6");
    }

    internal static IReadOnlyList<string> Rules(CheckResult result) => result.Violations.Select(v => v.Rule).Distinct().ToList();

    internal static void AssertCaught(CheckResult result, string rule, params string[] mentions)
    {
        TestContext.Out.WriteLine(result);
        Assert.That(result.Passed, Is.False, "the broken rule must be caught");
        Assert.That(Rules(result), Does.Contain(rule), result.ToString());
        foreach (string mention in mentions)
        {
            Assert.That(result.ToString(), Does.Contain(mention));
        }
    }
}
