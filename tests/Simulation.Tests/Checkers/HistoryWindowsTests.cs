using EmbeddedRaft.TestSupport.Linearizability;
using static EmbeddedRaft.Simulation.Tests.Checkers.EtcdKvModelExtensionTests;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>
/// Splitting a history at quiescent points: each window starts in the state read at its start and
/// must end in the state read at its end; a point with an operation in flight is refused; lease
/// expiries stand across windows while their lease lives.
/// </summary>
public sealed class HistoryWindowsTests
{
    [Test]
    public void A_correct_history_split_at_quiescent_points_passes_window_by_window()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            Op(0, 2, EtcdKvRequest.Put("a", "1"), Written(2)),
            Op(1, 3, EtcdKvRequest.Put("b", "1"), Written(3)),
            Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(1, 4, EtcdKvRequest.Put("c", "1")),
            Op(11, 12, EtcdKvRequest.Get("c"), Read(4, Kv("c", "1", 4, 4, 1))),
            Op(13, 14, EtcdKvRequest.Put("a", "2"), Written(5)),
        ];
        var atTen = EtcdKvState.Create(4, 0, [Kv("a", "1", 2, 2, 1), Kv("b", "1", 3, 3, 1), Kv("c", "1", 4, 4, 1)]);
        var windows = HistoryWindows.Split(history, EtcdKvState.Create(1), [new QuiescentPoint(10, atTen)]);

        Assert.That(windows, Has.Count.EqualTo(2));
        Assert.That(windows[0].Operations.Select(op => op.Input.ToString()), Is.EqualTo(new[] { "put a=1", "put b=1", "put c=1", $"expect-state {atTen}" }));
        Assert.That(windows[1].StartState, Is.SameAs(atTen));
        Assert.That(windows[1].Operations, Has.Count.EqualTo(2));
        var (failed, result) = HistoryWindows.CheckAll(windows);
        Assert.That(failed, Is.Null, result.Explanation);
    }

    [Test]
    public void A_window_that_cannot_reach_the_state_read_at_its_end_fails()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history = [Op(0, 2, EtcdKvRequest.Put("a", "1"), Written(2))];

        // The store was read holding a=2 at the point: no order of the window's operations gives that.
        var wrong = EtcdKvState.Create(2, 0, [Kv("a", "2", 2, 2, 1)]);
        var (failed, result) = HistoryWindows.CheckAll(HistoryWindows.Split(history, EtcdKvState.Create(1), [new QuiescentPoint(10, wrong)]));
        Assert.That(failed?.Number, Is.EqualTo(0));
        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable));
        Assert.That(result.Explanation, Does.Contain("expect-state"));
    }

    [Test]
    public void An_indeterminate_write_missing_from_the_state_at_the_point_never_happened_and_cannot_appear_later()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(0, 0, EtcdKvRequest.Put("a", "1")),
            Op(11, 12, EtcdKvRequest.Get("a"), Read(2, Kv("a", "1", 2, 2, 1))),
        ];

        // Whole, the history is linearizable (the put took effect late); split at a point where the
        // store was read empty, it is not: the point says the put was settled as never applied.
        Assert.That(LinearizabilityChecker.Check(EtcdKvModel.Instance, history).Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable));
        var (failed, _) = HistoryWindows.CheckAll(HistoryWindows.Split(history, EtcdKvState.Create(1), [new QuiescentPoint(10, EtcdKvState.Create(1))]));
        Assert.That(failed?.Number, Is.EqualTo(1));
    }

    [Test]
    public void A_point_with_a_completed_operation_in_flight_is_refused()
    {
        Operation<EtcdKvRequest, EtcdKvResponse>[] history = [Op(5, 15, EtcdKvRequest.Put("a", "1"), Written(2))];
        Assert.That(() => HistoryWindows.Split(history, EtcdKvState.Create(1), [new QuiescentPoint(10, EtcdKvState.Create(1))]),
            Throws.ArgumentException.With.Message.Contains("spans the quiescent point at 10"));
    }

    [Test]
    public void A_lease_expiry_stands_in_every_later_window_while_the_lease_lives()
    {
        var expiry = Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(9, 0, EtcdKvRequest.LeaseExpiry(7));
        Operation<EtcdKvRequest, EtcdKvResponse>[] history =
        [
            expiry,
            Op(0, 1, EtcdKvRequest.LeaseGrant(7, 60), LeaseAnswer(1, 7, 60)),
            Op(2, 3, EtcdKvRequest.PutWithLease("a", "1", 7), Written(2)),

            // Window 1: the lease expires (its key vanishes at revision 3).
            Op(11, 12, EtcdKvRequest.Get("a"), Read(3)),
        ];
        var leased = EtcdKvState.Create(2, 0, [Kv("a", "1", 2, 2, 1, lease: 7)], [new(7, 60)]);
        var gone = EtcdKvState.Create(3);
        var windows = HistoryWindows.Split(history, EtcdKvState.Create(1), [new QuiescentPoint(10, leased), new QuiescentPoint(20, gone)]);

        Assert.That(windows[1].Operations.Count(op => op.Input.ToString() == "lease-expiry 7"), Is.EqualTo(1), "the lease lives at 10: its expiry may still come");
        Assert.That(windows[2].Operations.Any(op => op.Input.ToString() == "lease-expiry 7"), Is.False, "the lease is gone at 20");
        var (failed, result) = HistoryWindows.CheckAll(windows);
        Assert.That(failed, Is.Null, result.Explanation);
    }

    [Test]
    public void Points_out_of_order_are_refused()
    {
        Assert.That(() => HistoryWindows.Split([], EtcdKvState.Create(1), [new QuiescentPoint(10, EtcdKvState.Create(1)), new QuiescentPoint(10, EtcdKvState.Create(1))]),
            Throws.ArgumentException.With.Message.Contains("strictly increasing"));
    }
}
