using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// The deterministic whole-cluster simulation of the replicated store: for each seed, 3 or 5 real
/// members under a nemesis with clients, then heal, converge and check (Raft safety, linearizability,
/// watches, serializable reads, leases, convergence). A failing seed prints the command that
/// replays it and the events that led to the violation. SIM_SEED=n replays one seed; SIM_SEEDS=n
/// runs n seeds (a soak); SIM_TRACE_FILE=path also writes the seed's whole trace to a file.
/// </summary>
[Parallelizable(ParallelScope.Children)]
public sealed class StoreSimulationTests
{
    // SIM_FIRST_SEED=n starts the seeds at n (to split a soak over processes: SIM_FIRST_SEED=5001 SIM_SEEDS=5000).
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("SIM_SEED", "SIM_SEEDS", FirstSeed(), 200);

    private static int FirstSeed() =>
        Environment.GetEnvironmentVariable("SIM_FIRST_SEED") is { Length: > 0 } first ? int.Parse(first, System.Globalization.CultureInfo.InvariantCulture) : 1;

    [TestCaseSource(nameof(Seeds))]
    public void ClusterStaysSafeAndConvergesUnderFaults(int seed)
    {
        // SIM_TRACE_FILE=path writes the seed's whole trace there (to study a replayed failure).
        string? traceFile = Environment.GetEnvironmentVariable("SIM_TRACE_FILE");
        var result = SimulationRun.Run(new SimulationOptions { Seed = seed, KeepTrace = traceFile is not null });
        if (traceFile is not null)
        {
            File.WriteAllLines(traceFile, result.FullTrace);
        }

        TestContext.Out.WriteLine(result.Summary);
        foreach (string warning in result.DeterminismWarnings)
        {
            TestContext.Out.WriteLine("DETERMINISM WARNING (the replay may differ): " + warning);
        }

        Assert.That(result.Passed, Is.True, () => result.Report(nameof(ClusterStaysSafeAndConvergesUnderFaults)));

        // Work that reached the scheduler from another thread makes the run depend on timing, not
        // on its seed: a failure here is a library wait that left the deterministic scheduler.
        Assert.That(result.DeterminismWarnings, Is.Empty, $"seed {seed}: work escaped the simulation's scheduler (replay with SIM_SEED={seed})");
    }

    /// <summary>The same seed twice gives the same run, event for event (hash of the whole trace); another seed gives another.</summary>
    [Test]
    public void TheSameSeedReplaysTheSameRun()
    {
        var options = new SimulationOptions { Seed = 4242, FaultPhase = TimeSpan.FromSeconds(3), KeepTrace = true };
        var first = SimulationRun.Run(options);
        var second = SimulationRun.Run(options);
        var other = SimulationRun.Run(options with { Seed = 4243 });
        TestContext.Out.WriteLine(first.Summary);
        TestContext.Out.WriteLine(second.Summary);
        TestContext.Out.WriteLine(other.Summary);
        int parted = first.FullTrace.Zip(second.FullTrace).TakeWhile(p => p.First == p.Second).Count();
        if (parted < Math.Max(first.FullTrace.Count, second.FullTrace.Count))
        {
            TestContext.Out.WriteLine($"The runs part at event {parted}:");
            TestContext.Out.WriteLine("first:  " + string.Join("\n        ", first.FullTrace.Skip(Math.Max(0, parted - 5)).Take(10)));
            TestContext.Out.WriteLine("second: " + string.Join("\n        ", second.FullTrace.Skip(Math.Max(0, parted - 5)).Take(10)));
        }

        Assert.Multiple(() =>
        {
            Assert.That(second.TraceEvents, Is.EqualTo(first.TraceEvents), "event count of the replay");
            Assert.That(second.TraceHash, Is.EqualTo(first.TraceHash), "trace hash of the replay");
            Assert.That(other.TraceHash, Is.Not.EqualTo(first.TraceHash), "another seed, another run");
            Assert.That(first.DeterminismWarnings.Concat(second.DeterminismWarnings), Is.Empty, "work that escaped the simulation's thread");
        });
    }

    /// <summary>
    /// Slow disks (fsyncs that take 20–200 ms of simulated time on one member at a time) delay that
    /// member's acknowledgements and applies, and the run stays safe and a function of its seed.
    /// </summary>
    [Test]
    public void SlowDisksDelayFsyncsAndReplayTheSameRun()
    {
        var options = new SimulationOptions { Seed = 4711, FaultPhase = TimeSpan.FromSeconds(3), Faults = NemesisFaults.SlowDisks | NemesisFaults.Crashes, NemesisInterval = TimeSpan.FromMilliseconds(150) };
        var first = SimulationRun.Run(options);
        var second = SimulationRun.Run(options);
        TestContext.Out.WriteLine(first.Summary);
        TestContext.Out.WriteLine(string.Join("; ", first.NemesisLog));
        Assert.Multiple(() =>
        {
            Assert.That(first.Passed, Is.True, () => first.Report(nameof(SlowDisksDelayFsyncsAndReplayTheSameRun)));
            Assert.That(first.SlowFsyncs, Is.GreaterThan(0), "fsyncs a slow disk delayed");
            Assert.That(second.TraceHash, Is.EqualTo(first.TraceHash), "trace hash of the replay");
            Assert.That(second.SlowFsyncs, Is.EqualTo(first.SlowFsyncs), "slow fsyncs of the replay");
            Assert.That(first.DeterminismWarnings.Concat(second.DeterminismWarnings), Is.Empty, "work that escaped the simulation's thread");
        });
    }
}
