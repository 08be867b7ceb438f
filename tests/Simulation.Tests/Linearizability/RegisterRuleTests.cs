using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// Small hand-written register histories, one rule each: what the checker must catch and what it
/// must accept. Times are plain numbers; an operation precedes another only when it completed
/// strictly before the other was invoked.
/// </summary>
public sealed class RegisterRuleTests
{
    private const string Key = "x";

    [Test]
    public void A_stale_read_is_caught()
    {
        var read = Read(4, 5, 1);
        var result = Check(Write(0, 1, 1), Write(2, 3, 2), read);

        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, result);
        Assert.That(result.Unplaced, Is.SameAs(read));
        Assert.That(result.Explanation, Does.Contain("State after it: 2"));
    }

    [Test]
    public void A_lost_write_is_caught()
    {
        // Both writes were acknowledged, yet a later read sees the state before the second.
        var result = Check(Write(0, 1, 1), Write(2, 3, 2), Read(4, 5, 2), Read(6, 7, 1));

        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, result);

        var vanished = Check(Write(0, 1, 1), Read(2, 3, null));
        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, vanished);
    }

    [Test]
    public void A_read_of_a_value_never_written_is_caught()
    {
        var result = Check(Write(0, 10, 1), Write(1, 9, 2), Read(2, 8, 7));

        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, result);
        Assert.That(result.Unplaced!.Output!.Value, Is.EqualTo(7));
    }

    [Test]
    public void An_indeterminate_write_that_took_effect_is_accepted()
    {
        var write = IndeterminateWrite(0, 1);
        Operation<RegisterInput, RegisterOutput>[] history = [write, Read(5, 6, 1)];
        var result = Check(history);

        WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, result);
        Assert.That(result.Linearization[0], Does.Contain(write), "the read of 1 needs the write to have happened");
    }

    [Test]
    public void An_indeterminate_write_that_never_took_effect_is_accepted()
    {
        Operation<RegisterInput, RegisterOutput>[] history = [Write(0, 1, 1), IndeterminateWrite(2, 2), Read(5, 6, 1), Read(7, 8, 1)];
        var result = Check(history);

        WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, result);
    }

    [Test]
    public void An_indeterminate_write_may_take_effect_long_after_its_invocation_but_only_once()
    {
        Operation<RegisterInput, RegisterOutput>[] late = [IndeterminateWrite(0, 2), Read(5, 6, null), Write(7, 8, 1), Read(9, 10, 2)];
        WitnessVerifier.VerifyWitness(RegisterModel.Instance, late, Check(late));

        // Seen, then unseen: it cannot have taken effect and then been undone.
        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, Check(IndeterminateWrite(0, 2), Read(5, 6, 2), Read(7, 8, null)));
    }

    [Test]
    public void An_indeterminate_write_cannot_take_effect_before_its_invocation()
    {
        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, Check(Read(0, 1, 2), IndeterminateWrite(2, 2)));
    }

    [Test]
    public void Concurrent_operations_may_be_ordered_either_way()
    {
        foreach (int last in new[] { 1, 2 })
        {
            Operation<RegisterInput, RegisterOutput>[] history = [Write(0, 10, 1), Write(1, 9, 2), Read(11, 12, last)];
            WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, Check(history));
        }

        // A read overlapping a write may see the value before it or after it.
        foreach (int? seen in new int?[] { 1, 2 })
        {
            Operation<RegisterInput, RegisterOutput>[] history = [Write(0, 1, 1), Write(2, 10, 2), Read(3, 4, seen)];
            WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, Check(history));
        }
    }

    [Test]
    public void Operations_that_touch_in_time_are_concurrent()
    {
        // The write completes at 5, the read is invoked at 5: neither strictly precedes the other.
        Operation<RegisterInput, RegisterOutput>[] history = [Write(0, 1, 1), Write(3, 5, 2), Read(5, 6, 1)];
        WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, Check(history));
    }

    [Test]
    public void A_compare_and_set_that_failed_took_no_effect_and_one_that_succeeded_needed_its_value()
    {
        Operation<RegisterInput, RegisterOutput>[] good = [Write(0, 1, 1), Cas(2, 3, 5, 6, false), Cas(4, 5, 1, 3, true), Read(6, 7, 3)];
        WitnessVerifier.VerifyWitness(RegisterModel.Instance, good, Check(good));

        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, Check(Write(0, 1, 1), Cas(2, 3, 5, 6, true)));
        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, Check(Write(0, 1, 1), Cas(2, 3, 1, 6, false)));
        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, Check(Write(0, 1, 1), Cas(2, 3, 5, 6, false), Read(4, 5, 6)));
    }

    [Test]
    public void Registers_are_checked_per_key_and_the_failing_key_is_named()
    {
        Operation<RegisterInput, RegisterOutput>[] history =
        [
            Op(0, 1, RegisterInput.Write("a", 1), RegisterOutput.Ok),
            Op(2, 3, RegisterInput.Write("b", 1), RegisterOutput.Ok),
            Op(4, 5, RegisterInput.Read("a"), RegisterOutput.ReadValue(1)),
            Op(6, 7, RegisterInput.Read("b"), RegisterOutput.ReadValue(null)),
        ];
        var result = LinearizabilityChecker.Check(RegisterModel.Instance, history);

        WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, result);
        Assert.That(result.PartitionKey, Is.EqualTo("b"));
        Assert.That(result.Explanation, Does.Contain("partition \"b\""));

        // A write to one key does not change what another key reads.
        Operation<RegisterInput, RegisterOutput>[] independent = [history[0], history[1], history[2], Op(6, 7, RegisterInput.Read("b"), RegisterOutput.ReadValue(1))];
        var fine = LinearizabilityChecker.Check(RegisterModel.Instance, independent);
        WitnessVerifier.VerifyWitness(RegisterModel.Instance, independent, fine);
        Assert.That(fine.Linearization, Has.Count.EqualTo(2));
    }

    [Test]
    public void A_search_that_reaches_its_step_bound_answers_unknown()
    {
        // Many concurrent writes and one late read: deciding takes more than ten steps.
        var history = Enumerable.Range(0, 8).Select(i => Write(i, 100, i)).Append(Read(101, 102, 3)).ToArray();
        var result = LinearizabilityChecker.Check(RegisterModel.Instance, history, LinearizabilityCheckerOptions.Default with { MaxSteps = 10 });

        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.Unknown));
        Assert.That(result.Explanation, Does.StartWith("Unknown").And.Contains("limit 10"));
        Assert.That(LinearizabilityChecker.Check(RegisterModel.Instance, history).Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable));
    }

    [Test]
    public void An_empty_history_is_linearizable()
    {
        Assert.That(Check().Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable));
    }

    [Test]
    public void Options_reject_bounds_that_cannot_work()
    {
        var steps = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinearizabilityCheckerOptions { MaxSteps = 0 });
        Assert.That(steps!.ParamName, Is.EqualTo(nameof(LinearizabilityCheckerOptions.MaxSteps)));
        var timeout = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new LinearizabilityCheckerOptions { Timeout = TimeSpan.Zero });
        Assert.That(timeout!.ParamName, Is.EqualTo(nameof(LinearizabilityCheckerOptions.Timeout)));
        Assert.Throws<ArgumentOutOfRangeException>(() => Operation.Completed(0, 5, 4, RegisterInput.Read(Key), RegisterOutput.ReadValue(null)));
    }

    [Test]
    public void The_history_recorder_keeps_one_operation_per_client_in_flight_and_leaves_unfinished_ones_indeterminate()
    {
        var history = new History<RegisterInput, RegisterOutput>();
        int write = history.Invoke(clientId: 1, ticks: 0, RegisterInput.Write(Key, 1));
        Assert.Throws<InvalidOperationException>(() => history.Invoke(clientId: 1, ticks: 1, RegisterInput.Read(Key)));
        history.MarkIndeterminate(write);
        int read = history.Invoke(clientId: 1, ticks: 2, RegisterInput.Read(Key));
        history.Complete(read, 3, RegisterOutput.ReadValue(1));
        Assert.Throws<InvalidOperationException>(() => history.Complete(read, 4, RegisterOutput.ReadValue(1)));
        int unfinished = history.Invoke(clientId: 2, ticks: 4, RegisterInput.Write(Key, 2));

        Assert.That(history.Operations[write].Indeterminate, Is.True);
        Assert.That(history.Operations[read].CompleteTicks, Is.EqualTo(3));
        Assert.That(history.Operations[unfinished].Indeterminate, Is.True);
        WitnessVerifier.VerifyWitness(RegisterModel.Instance, history.Operations, LinearizabilityChecker.Check(RegisterModel.Instance, history.Operations));
    }

    private static LinearizabilityResult<RegisterInput, RegisterOutput> Check(params Operation<RegisterInput, RegisterOutput>[] history) =>
        LinearizabilityChecker.Check(RegisterModel.Instance, history);

    private static Operation<RegisterInput, RegisterOutput> Op(long invoke, long complete, RegisterInput input, RegisterOutput output) =>
        Operation.Completed(0, invoke, complete, input, output);

    private static Operation<RegisterInput, RegisterOutput> Write(long invoke, long complete, int value) =>
        Op(invoke, complete, RegisterInput.Write(Key, value), RegisterOutput.Ok);

    private static Operation<RegisterInput, RegisterOutput> Read(long invoke, long complete, int? value) =>
        Op(invoke, complete, RegisterInput.Read(Key), RegisterOutput.ReadValue(value));

    private static Operation<RegisterInput, RegisterOutput> Cas(long invoke, long complete, int expected, int value, bool succeeded) =>
        Op(invoke, complete, RegisterInput.CompareAndSet(Key, expected, value), succeeded ? RegisterOutput.Ok : RegisterOutput.Failed);

    private static Operation<RegisterInput, RegisterOutput> IndeterminateWrite(long invoke, int value) =>
        Operation.IndeterminateAfter<RegisterInput, RegisterOutput>(0, invoke, RegisterInput.Write(Key, value));
}
