using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// Hand-written etcd KV histories: the model's revisions (one per changing request, none for reads
/// or a delete of nothing, create/mod revision and version per key) are checked as outputs, so a
/// stale revision is caught as surely as a stale value.
/// </summary>
public sealed class EtcdKvRuleTests
{
    private static EtcdKvModel Model => EtcdKvModel.Instance;

    [Test]
    public void Puts_create_one_revision_each_and_a_get_returns_the_key_with_its_revisions()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("b", "1"), Written(3)),
            Op(4, 5, EtcdKvRequest.Put("a", "2"), Written(4)),
            Op(6, 7, EtcdKvRequest.Get("a"), Read(4, new EtcdKeyValue("a", "2", 2, 4, 2))),
            Op(8, 9, EtcdKvRequest.Range("a", "\0"), Read(4, new EtcdKeyValue("a", "2", 2, 4, 2), new EtcdKeyValue("b", "1", 3, 3, 1))),
        ];
        WitnessVerifier.VerifyWitness(Model, history, LinearizabilityChecker.Check(Model, history));
    }

    [Test]
    public void A_read_with_a_stale_revision_is_caught_even_when_its_value_is_current()
    {
        var result = LinearizabilityChecker.Check(Model,
        [
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 3, EtcdKvRequest.Put("b", "1"), Written(3)),
            Op(4, 5, EtcdKvRequest.Get("a"), Read(2, new EtcdKeyValue("a", "1", 2, 2, 1))),
        ]);
        WitnessVerifier.VerifyCounterexample(Model, result);
        Assert.That(result.Explanation, Does.Contain("rev 3"));
    }

    [Test]
    public void Concurrent_puts_may_be_ordered_either_way_but_their_revisions_must_agree_with_what_is_read()
    {
        foreach ((long first, long second, string value) in new[] { (2L, 3L, "2"), (3L, 2L, "1") })
        {
            Operation<EtcdKvRequest, EtcdKvResponse>[] history =
            [
                Op(0, 10, EtcdKvRequest.Put("a", "1"), Written(first)),
                Op(1, 9, EtcdKvRequest.Put("a", "2"), Written(second)),
                Op(11, 12, EtcdKvRequest.Get("a"), Read(3, new EtcdKeyValue("a", value, 2, 3, 2))),
            ];
            WitnessVerifier.VerifyWitness(Model, history, LinearizabilityChecker.Check(Model, history));
        }

        // The put that got revision 2 went first, so revision 3 holds the other value.
        WitnessVerifier.VerifyCounterexample(Model, LinearizabilityChecker.Check(Model,
        [
            Op(0, 10, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(1, 9, EtcdKvRequest.Put("a", "2"), Written(3)),
            Op(11, 12, EtcdKvRequest.Get("a"), Read(3, new EtcdKeyValue("a", "1", 2, 3, 2))),
        ]));
    }

    [Test]
    public void A_delete_of_nothing_creates_no_revision_and_a_delete_of_a_key_does()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            Op(0, 1, EtcdKvRequest.Delete("a"), Deleted(1, 0)),
            Op(2, 3, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(4, 5, EtcdKvRequest.Delete("a"), Deleted(3, 1)),
            Op(6, 7, EtcdKvRequest.Get("a"), Read(3)),
            Op(8, 9, EtcdKvRequest.Put("a", "2"), Written(4)),
            Op(10, 11, EtcdKvRequest.Get("a"), Read(4, new EtcdKeyValue("a", "2", 4, 4, 1))),
        ];
        WitnessVerifier.VerifyWitness(Model, history, LinearizabilityChecker.Check(Model, history));

        WitnessVerifier.VerifyCounterexample(Model, LinearizabilityChecker.Check(Model,
            [Op(0, 1, EtcdKvRequest.Delete("a"), Deleted(2, 0))]));
    }

    [Test]
    public void A_compare_and_set_transaction_takes_its_branch_by_the_value_and_fails_on_a_missing_key()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            Op(0, 1, EtcdKvRequest.CompareValueAndPut("a", "", "x"), Failed(1, new EtcdKvOperationResult([], 0))),
            Op(2, 3, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(4, 5, EtcdKvRequest.CompareValueAndPut("a", "1", "2"), Written(3)),
            Op(6, 7, EtcdKvRequest.CompareValueAndPut("a", "1", "3"), Failed(3, new EtcdKvOperationResult([new EtcdKeyValue("a", "2", 2, 3, 2)], 0))),
            Op(8, 9, EtcdKvRequest.CompareModRevisionAndPut("a", 3, "4"), Written(4)),
            Op(10, 11, EtcdKvRequest.CompareModRevisionAndPut("b", 0, "1"), Written(5)),
        ];
        WitnessVerifier.VerifyWitness(Model, history, LinearizabilityChecker.Check(Model, history));

        // Two compare-and-sets from the same value cannot both succeed.
        WitnessVerifier.VerifyCounterexample(Model, LinearizabilityChecker.Check(Model,
        [
            Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(2, 5, EtcdKvRequest.CompareValueAndPut("a", "1", "2"), Written(3)),
            Op(3, 6, EtcdKvRequest.CompareValueAndPut("a", "1", "3"), Written(4)),
        ]));
    }

    [Test]
    public void An_indeterminate_put_is_accepted_whether_or_not_it_took_effect_and_its_revision_shows_when_it_did()
    {
        var lost = Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(0, 0, EtcdKvRequest.Put("a", "1"));
        Operation<EtcdKvRequest, EtcdKvResponse>[] happened = [lost, Op(5, 6, EtcdKvRequest.Put("b", "1"), Written(3))];
        var result = LinearizabilityChecker.Check(Model, happened);
        WitnessVerifier.VerifyWitness(Model, happened, result);
        Assert.That(result.Linearization[0], Does.Contain(lost), "revision 3 for b means the put of a took revision 2");

        Operation<EtcdKvRequest, EtcdKvResponse>[] didNot = [lost, Op(5, 6, EtcdKvRequest.Put("b", "1"), Written(2)), Op(7, 8, EtcdKvRequest.Get("a"), Read(2))];
        WitnessVerifier.VerifyWitness(Model, didNot, LinearizabilityChecker.Check(Model, didNot));

        // A revision that skips one with no indeterminate write to explain it.
        WitnessVerifier.VerifyCounterexample(Model, LinearizabilityChecker.Check(Model,
            [Op(0, 1, EtcdKvRequest.Put("a", "1"), Written(2)), Op(5, 6, EtcdKvRequest.Put("b", "1"), Written(4))]));
    }

    [Test]
    public void Two_indeterminate_puts_may_have_taken_effect_in_either_order()
    {
        // Both orders reach the same revisions and versions with different values: the checker's
        // cache must tell those states apart, or the order it explores second is never tried.
        foreach (string last in new[] { "1", "2" })
        {
            Operation<EtcdKvRequest, EtcdKvResponse>[] history =
            [
                Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(0, 0, EtcdKvRequest.Put("a", "1")),
                Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(1, 1, EtcdKvRequest.Put("a", "2")),
                Op(10, 11, EtcdKvRequest.Get("a"), Read(3, new EtcdKeyValue("a", last, 2, 3, 2))),
            ];
            WitnessVerifier.VerifyWitness(Model, history, LinearizabilityChecker.Check(Model, history));
        }
    }

    [Test]
    public void Reads_inside_a_transaction_see_its_own_writes_and_all_its_writes_share_one_revision()
    {
        var request = new EtcdKvRequest([], [EtcdKvOperation.Put("a", "1"), EtcdKvOperation.Put("b", "1"), EtcdKvOperation.Range("a", "c")], []);
        (EtcdKvResponse response, EtcdKvState next) = Model.Apply(Model.Initial, request);

        Assert.That(response.Revision, Is.EqualTo(2));
        Assert.That(response.Results[2].Kvs, Is.EqualTo(new[] { new EtcdKeyValue("a", "1", 2, 2, 1), new EtcdKeyValue("b", "1", 2, 2, 1) }));
        Assert.That(next.Revision, Is.EqualTo(2));
    }

    private static Operation<EtcdKvRequest, EtcdKvResponse> Op(long invoke, long complete, EtcdKvRequest request, EtcdKvResponse response) =>
        Operation.Completed(0, invoke, complete, request, response);

    private static EtcdKvResponse Written(long revision) => new(revision, true, [EtcdKvOperationResult.PutDone]);

    private static EtcdKvResponse Deleted(long revision, long count) => new(revision, true, [new EtcdKvOperationResult([], count)]);

    private static EtcdKvResponse Read(long revision, params EtcdKeyValue[] kvs) => new(revision, true, [new EtcdKvOperationResult(kvs, 0)]);

    private static EtcdKvResponse Failed(long revision, EtcdKvOperationResult result) => new(revision, false, [result]);
}
