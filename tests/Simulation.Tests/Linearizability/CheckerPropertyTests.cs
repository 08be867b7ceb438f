using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// Seeded properties of the checker: histories cut from a sequential execution are always
/// linearizable, with a witness that replays; a single wrong output is always caught where it must
/// be (no concurrency, or a value nobody wrote) and the catch rate elsewhere is printed; and on
/// small random histories the checker agrees exactly with a brute-force search of every order.
/// LIN_SEED=N replays one seed, LIN_SOAK_SEEDS=N runs N seeds.
/// </summary>
[Parallelizable(ParallelScope.Children)]
public sealed class CheckerPropertyTests
{
    private const int HistoriesPerSeed = 25;

    public static IEnumerable<int> Seeds() => TestSeeds.Choose("LIN_SEED", "LIN_SOAK_SEEDS", first: 1, defaultCount: 8);

    [TestCaseSource(nameof(Seeds))]
    public void Register_histories_from_a_sequential_execution_are_linearizable_and_one_wrong_output_is_caught_where_it_must_be(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: LIN_SEED={seed})");
        var random = new Random(seed);
        int mutated = 0, caught = 0;
        for (int round = 0; round < HistoriesPerSeed; round++)
        {
            int window = random.Next(2) == 0 ? random.Next(5) : random.Next(5, 60);
            double indeterminate = random.Next(3) == 0 ? 0 : 0.15;
            List<Operation<RegisterInput, RegisterOutput>> history = GeneratedHistories.Register(random, random.Next(10, 120), window, indeterminate);
            string where = $"seed {seed} round {round} (window {window}, {history.Count} operations; replay: LIN_SEED={seed})";

            var result = LinearizabilityChecker.Check(RegisterModel.Instance, history);
            Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable), $"{where}\n{result.Explanation}");
            WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, result);

            if (GeneratedHistories.MutateOne(random, history, GeneratedHistories.MutateRegister) is not var (wrong, index))
            {
                continue;
            }

            var verdict = LinearizabilityChecker.Check(RegisterModel.Instance, wrong);
            Assert.That(verdict.Verdict, Is.Not.EqualTo(LinearizabilityVerdict.Unknown), $"{where}\n{verdict.Explanation}");
            bool sequential = window < 5 && history.All(op => !op.Indeterminate);
            if (sequential)
            {
                // One order only, and the model is deterministic: a different output cannot fit.
                Assert.That(verdict.Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable), $"{where}: mutated #{index} {wrong[index]} was not caught");
            }

            mutated++;
            if (verdict.Verdict == LinearizabilityVerdict.NotLinearizable)
            {
                caught++;
                WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, verdict);
            }
            else
            {
                WitnessVerifier.VerifyWitness(RegisterModel.Instance, wrong, verdict);
            }

            // A read of a value nobody ever wrote is wrong under any order.
            int readIndex = wrong.FindIndex(op => op.Input.Kind == RegisterOperationKind.Read && !op.Indeterminate);
            if (readIndex >= 0)
            {
                var phantom = new List<Operation<RegisterInput, RegisterOutput>>(history);
                phantom[readIndex] = phantom[readIndex] with { Output = RegisterOutput.ReadValue(99) };
                Assert.That(LinearizabilityChecker.Check(RegisterModel.Instance, phantom).Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable), $"{where}: a read of 99 at #{readIndex}");
            }
        }

        TestContext.Out.WriteLine($"one wrong output caught in {caught} of {mutated} histories (concurrency can make some wrong outputs fit another order)");
    }

    [TestCaseSource(nameof(Seeds))]
    public void EtcdKv_histories_from_a_sequential_execution_are_linearizable_and_one_wrong_output_is_caught_where_it_must_be(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: LIN_SEED={seed})");
        var random = new Random(seed);
        int caught = 0;
        for (int round = 0; round < HistoriesPerSeed; round++)
        {
            int window = random.Next(2) == 0 ? random.Next(5) : random.Next(5, 40);
            double indeterminate = random.Next(3) == 0 ? 0 : 0.1;
            List<Operation<EtcdKvRequest, EtcdKvResponse>> history = GeneratedHistories.EtcdKv(random, random.Next(5, 60), window, indeterminate);
            string where = $"seed {seed} round {round} (window {window}, {history.Count} operations; replay: LIN_SEED={seed})";

            var result = LinearizabilityChecker.Check(EtcdKvModel.Instance, history);
            Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable), $"{where}\n{result.Explanation}");
            WitnessVerifier.VerifyWitness(EtcdKvModel.Instance, history, result);

            if (GeneratedHistories.MutateOne(random, history, GeneratedHistories.MutateEtcdKv) is not var (wrong, index))
            {
                continue;
            }

            var verdict = LinearizabilityChecker.Check(EtcdKvModel.Instance, wrong);
            Assert.That(verdict.Verdict, Is.Not.EqualTo(LinearizabilityVerdict.Unknown), $"{where}\n{verdict.Explanation}");
            if (window < 5 && history.All(op => !op.Indeterminate))
            {
                Assert.That(verdict.Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable), $"{where}: mutated #{index} {wrong[index].Output} was not caught");
            }

            if (verdict.Verdict == LinearizabilityVerdict.NotLinearizable)
            {
                caught++;
                WitnessVerifier.VerifyCounterexample(EtcdKvModel.Instance, verdict);
            }
            else
            {
                WitnessVerifier.VerifyWitness(EtcdKvModel.Instance, wrong, verdict);
            }
        }

        TestContext.Out.WriteLine($"one wrong output caught in {caught} of {HistoriesPerSeed} histories");
    }

    [TestCaseSource(nameof(Seeds))]
    public void On_small_random_histories_the_checker_agrees_with_a_brute_force_search_of_every_order(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: LIN_SEED={seed})");
        var random = new Random(seed);
        int linearizable = 0;
        const int Rounds = 300;
        for (int round = 0; round < Rounds; round++)
        {
            List<Operation<RegisterInput, RegisterOutput>> history = RandomSmallHistory(random);
            bool expected = BruteForceLinearizability.IsLinearizable(RegisterModel.Instance, history);
            var result = LinearizabilityChecker.Check(RegisterModel.Instance, history);
            string where = $"seed {seed} round {round} (replay: LIN_SEED={seed}):\n  {string.Join("\n  ", history)}\n{result.Explanation}";

            Assert.That(result.Verdict, Is.EqualTo(expected ? LinearizabilityVerdict.Linearizable : LinearizabilityVerdict.NotLinearizable), where);
            if (expected)
            {
                linearizable++;
                WitnessVerifier.VerifyWitness(RegisterModel.Instance, history, result);
            }
            else
            {
                WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, result);
            }
        }

        TestContext.Out.WriteLine($"{linearizable} of {Rounds} random histories linearizable");
        Assert.That(linearizable, Is.InRange(1, Rounds - 1), "the generator must produce both kinds, or the comparison shows nothing");
    }

    [TestCaseSource(nameof(Seeds))]
    public void On_small_etcd_histories_with_one_output_perhaps_changed_the_checker_agrees_with_a_brute_force_search(int seed)
    {
        // Unpartitioned, with states compared by EtcdKvState's equality: a wrong equality or hash
        // would make the cache prune orders it has not explored, and the verdicts would differ.
        TestContext.Out.WriteLine($"seed {seed} (replay: LIN_SEED={seed})");
        var random = new Random(seed);
        int linearizable = 0;
        const int Rounds = 150;
        for (int round = 0; round < Rounds; round++)
        {
            List<Operation<EtcdKvRequest, EtcdKvResponse>> history = GeneratedHistories.EtcdKv(random, random.Next(1, 8), random.Next(40), 0.4);
            if (random.Next(2) == 0 && GeneratedHistories.MutateOne(random, history, GeneratedHistories.MutateEtcdKv) is var (wrong, _))
            {
                history = wrong;
            }

            bool expected = BruteForceLinearizability.IsLinearizable(EtcdKvModel.Instance, history);
            var result = LinearizabilityChecker.Check(EtcdKvModel.Instance, history);
            Assert.That(result.Verdict, Is.EqualTo(expected ? LinearizabilityVerdict.Linearizable : LinearizabilityVerdict.NotLinearizable),
                $"seed {seed} round {round} (replay: LIN_SEED={seed}):\n  {string.Join("\n  ", history)}\n{result.Explanation}");
            linearizable += expected ? 1 : 0;
        }

        TestContext.Out.WriteLine($"{linearizable} of {Rounds} linearizable");
        Assert.That(linearizable, Is.InRange(1, Rounds - 1), "the generator must produce both kinds, or the comparison shows nothing");
    }

    /// <summary>Up to 7 operations with arbitrary outputs on one or two registers, overlapping at random, some indeterminate.</summary>
    private static List<Operation<RegisterInput, RegisterOutput>> RandomSmallHistory(Random random)
    {
        int count = random.Next(1, 8);
        bool twoKeys = random.Next(4) == 0;
        var history = new List<Operation<RegisterInput, RegisterOutput>>(count);
        for (int i = 0; i < count; i++)
        {
            string key = twoKeys && random.Next(2) == 0 ? "b" : "a";
            long invoke = random.Next(20);
            long complete = invoke + random.Next(8);
            RegisterInput input = random.Next(3) switch
            {
                0 => RegisterInput.Read(key),
                1 => RegisterInput.Write(key, random.Next(3)),
                _ => RegisterInput.CompareAndSet(key, random.Next(3), random.Next(3)),
            };
            if (input.Kind != RegisterOperationKind.Read && random.Next(5) == 0)
            {
                history.Add(Operation.IndeterminateAfter<RegisterInput, RegisterOutput>(i, invoke, input));
                continue;
            }

            RegisterOutput output = input.Kind switch
            {
                RegisterOperationKind.Read => RegisterOutput.ReadValue(random.Next(4) == 0 ? null : random.Next(3)),
                RegisterOperationKind.Write => RegisterOutput.Ok,
                _ => random.Next(2) == 0 ? RegisterOutput.Ok : RegisterOutput.Failed,
            };
            history.Add(Operation.Completed(i, invoke, complete, input, output));
        }

        return history;
    }
}
