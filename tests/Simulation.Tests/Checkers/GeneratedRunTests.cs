using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>
/// Seeded runs of a correct store (<see cref="GeneratedRun"/>) pass every checker; the same runs with
/// one rule broken — an event dropped, delivered twice or out of order, a revoked lease's key read
/// back, a member's hash diverged, a read's value forged — fail the checker that owns the rule.
/// CHECKER_SEED=N replays one seed, CHECKER_SOAK_SEEDS=N runs N.
/// </summary>
[Parallelizable(ParallelScope.Children)]
public sealed class GeneratedRunTests
{
    private const int OperationsPerRun = 120;

    private static readonly LinearizabilityCheckerOptions s_bound = LinearizabilityCheckerOptions.Default with { MaxSteps = 2_000_000 };

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("CHECKER_SEED", "CHECKER_SOAK_SEEDS", 1800, 10);

    [TestCaseSource(nameof(Seeds))]
    public void A_correct_run_passes_every_checker(int seed)
    {
        GeneratedRun run = Generate(seed);
        var (window, linearizable) = CheckLinearizable(run.History, run);
        Assert.That(window, Is.Null, $"{window}: {linearizable.Explanation}");

        var (reference, soundness) = ReferenceHistory.FromWatchers(run.ReferenceWatchers, run.History);
        CheckResult all = CheckResult.Combine(
            soundness,
            WatchChecker.Check(reference, [.. run.ReferenceWatchers, .. run.Watchers], run.History),
            WatchChecker.CheckAcknowledgedWrites(reference, run.History),
            LeaseChecker.Check(reference, run.History),
            ConvergenceChecker.Check(run.Hashes));
        TestContext.Out.WriteLine(all);
        Assert.That(all.Passed, all.ToString());
        Assert.That(reference.CoveredThrough, Is.EqualTo(run.Final.Revision));
        Assert.That(run.Revocations, Is.Not.Empty, "every run revokes a lease");
    }

    [TestCaseSource(nameof(Seeds))]
    public void Each_broken_rule_in_a_run_is_caught_by_its_checker(int seed)
    {
        GeneratedRun run = Generate(seed);
        var random = new Random(seed ^ 0x5EED);
        var (reference, _) = ReferenceHistory.FromWatchers(run.ReferenceWatchers, run.History);

        // A watcher loses one event.
        (int w, WatchObservation dropped) = Mutate(run, random, (watch, r) =>
        {
            int response = PickEventResponse(watch, r);
            var events = watch.Responses[response].Events.ToList();
            events.RemoveAt(r.Next(events.Count));
            return watch.WithResponses([.. watch.Responses.Select((x, i) => i == response ? x with { Events = events } : x)]);
        });
        AssertCaught(WatchChecker.Check(reference, Replace(run.Watchers, w, dropped), run.History), "watch.gap", "watch.mismatch");

        // A watcher receives a response again, after the next one.
        (w, WatchObservation duplicated) = Mutate(run, random, (watch, r) =>
        {
            int response = PickEventResponse(watch, r);
            var responses = watch.Responses.ToList();
            responses.Insert(Math.Min(response + 2, responses.Count), responses[response]);
            return watch.WithResponses([.. responses]);
        });
        AssertCaught(WatchChecker.Check(reference, Replace(run.Watchers, w, duplicated), run.History), "watch.duplicate");

        // A watcher receives two responses swapped.
        (w, WatchObservation reordered) = Mutate(run, random, (watch, r) =>
        {
            var withEvents = Enumerable.Range(0, watch.Responses.Count).Where(i => watch.Responses[i].Events.Count > 0).ToList();
            if (withEvents.Count < 2)
            {
                return null;
            }

            int first = r.Next(withEvents.Count - 1);
            var responses = watch.Responses.ToList();
            (responses[withEvents[first]], responses[withEvents[first + 1]]) = (responses[withEvents[first + 1]], responses[withEvents[first]]);
            return watch.WithResponses([.. responses]);
        });
        AssertCaught(WatchChecker.Check(reference, Replace(run.Watchers, w, reordered), run.History), "watch.order", "watch.duplicate");

        // A key of the revoked lease read back at the revocation's revision (a serializable read on a member that applied it).
        (long lease, long revoked) = run.Revocations[0];
        var resurrected = Operation.Completed(7, long.MaxValue - 1, long.MaxValue - 1, EtcdKvRequest.Get("a"),
            new EtcdKvResponse(revoked, true, [new EtcdKvOperationResult([new EtcdKeyValue("a", "leased", 2, 2, 1, lease)], 0)]));
        AssertCaught(LeaseChecker.Check(reference, [.. run.History, resurrected]), "lease.visible-after-revoke");

        // One member's hash diverges.
        var hashes = run.Hashes.Select(h => h.MemberId == 2 ? h with { Hash = h.Hash + 1 } : h).ToList();
        CheckResult diverged = ConvergenceChecker.Check(hashes);
        AssertCaught(diverged, "convergence.hash");
        Assert.That(diverged.Violations.Single().Detail, Does.StartWith("member 2 differs"));

        // A read's value forged.
        int read = run.History.FindIndex(op => op.Output is { Error: EtcdKvError.None } output && op.Input.ToString().StartsWith("get ", StringComparison.Ordinal)
            && output.Results.Count == 1 && output.Results[0].Kvs.Count > 0 && !output.Results[0].Kvs[0].Value.StartsWith("forged", StringComparison.Ordinal));
        Assert.That(read, Is.Not.Negative, "every run reads some key");
        var forged = run.History.ToList();
        var original = forged[read].Output!;
        forged[read] = forged[read] with { Output = original with { Results = [original.Results[0] with { Kvs = [original.Results[0].Kvs[0] with { Value = "forged" }, .. original.Results[0].Kvs.Skip(1)] }] } };
        var (failed, notLinearizable) = CheckLinearizable(forged, run);
        Assert.That(notLinearizable.Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable), $"{failed}: {notLinearizable.Explanation}");
        Assert.That(failed!.Operations, Does.Contain(forged[read]), "the window holding the forged read fails");
    }

    /// <summary>The run's history checked window by window, split at its quiescent points (as the simulator checks its own).</summary>
    private static (HistoryWindow? Failed, LinearizabilityResult<EtcdKvRequest, EtcdKvResponse> Result) CheckLinearizable(IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history, GeneratedRun run)
    {
        var (reference, _) = ReferenceHistory.FromWatchers(run.ReferenceWatchers, run.History);
        var windows = HistoryWindows.Split(history, EtcdKvState.Create(1), run.Points, reference.KeysAt);
        var (failed, result) = HistoryWindows.CheckAll(windows, keepHistory: true, s_bound);
        TestContext.Out.WriteLine($"{windows.Count} windows checked; the last check took {result.Steps} steps");
        return (failed, result);
    }

    private static GeneratedRun Generate(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: CHECKER_SEED={seed})");
        GeneratedRun run = GeneratedRun.Create(seed, OperationsPerRun);
        TestContext.Out.WriteLine(run);
        return run;
    }

    /// <summary>Applies <paramref name="mutation"/> to the first watcher (from a random one on) it applies to (null: not applicable).</summary>
    private static (int Index, WatchObservation Mutated) Mutate(GeneratedRun run, Random random, Func<WatchObservation, Random, WatchObservation?> mutation)
    {
        int start = random.Next(run.Watchers.Count);
        for (int n = 0; n < run.Watchers.Count; n++)
        {
            int index = (start + n) % run.Watchers.Count;
            if (run.Watchers[index].Responses.Any(r => r.Events.Count > 0) && mutation(run.Watchers[index], random) is { } mutated)
            {
                return (index, mutated);
            }
        }

        // Every run has watchers with events: the whole-keyspace ones are not mutated, so fall back to a copy of one.
        WatchObservation copy = run.ReferenceWatchers[0] with { WatcherId = "copy" };
        return (run.Watchers.Count, mutation(copy, random) ?? throw new InvalidOperationException($"No watcher to mutate in {run}."));
    }

    private static int PickEventResponse(WatchObservation watch, Random random)
    {
        var withEvents = Enumerable.Range(0, watch.Responses.Count).Where(i => watch.Responses[i].Events.Count > 0).ToList();
        return withEvents[random.Next(withEvents.Count)];
    }

    private static List<WatchObservation> Replace(List<WatchObservation> watchers, int index, WatchObservation mutated)
    {
        var copy = watchers.ToList();
        if (index == copy.Count)
        {
            copy.Add(mutated);
        }
        else
        {
            copy[index] = mutated;
        }

        return copy;
    }

    private static void AssertCaught(CheckResult result, params string[] anyOfRules)
    {
        TestContext.Out.WriteLine(result);
        Assert.That(result.Passed, Is.False, $"the broken rule must be caught by {result.Checker}");
        Assert.That(result.Violations.Any(v => anyOfRules.Contains(v.Rule)), $"expected one of {string.Join(", ", anyOfRules)}: {result}");
    }
}
