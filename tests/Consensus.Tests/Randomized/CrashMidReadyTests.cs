using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Randomized;

/// <summary>
/// <see cref="ClusterSimulation"/> with a <see cref="CrashingHost"/>: nodes send before they
/// persist, lose writes that were not synced, crash in the middle of a Ready and restart with or
/// without their applied state. RAFT_SEED=N replays one seed; RAFT_SOAK_SEEDS=N runs N seeds.
/// </summary>
public class CrashMidReadyTests
{
    private const int DefaultSeeds = 200;
    private const int FaultSteps = 1500;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("RAFT_SEED", "RAFT_SOAK_SEEDS", first: 1, DefaultSeeds);

    [TestCase(3, false)]
    [TestCase(5, false)]
    [TestCase(3, true)]
    [TestCase(5, true)]
    public void SafetyHoldsWhenNodesCrashMidReadyAndLoseUnsyncedWrites(int size, bool pipelined)
    {
        var seeds = new List<int>();
        ulong committed = 0;
        int crashes = 0, lostWrites = 0, keptApplied = 0, pipelinedReadies = 0;
        foreach (var seed in Seeds())
        {
            var simulation = new ClusterSimulation(seed, size, crashMidReady: true, profile: pipelined ? SimulationProfile.PipelinedReadies : SimulationProfile.Mixed);
            simulation.Run(FaultSteps);

            seeds.Add(seed);
            committed += simulation.CommittedCount;
            crashes += simulation.Host!.CrashesMidReady;
            lostWrites += simulation.Host.LostWrites;
            keptApplied += simulation.Host.RestartsKeepingApplied;
            pipelinedReadies += simulation.Host.PipelinedReadies;
        }

        TestContext.Out.WriteLine(
            $"{seeds.Count} seeds passed ({size} nodes, {(pipelined ? "pipelined" : "one Ready at a time")}, seeds {seeds[0]}..{seeds[^1]}): {committed} entries committed, {crashes} crashes mid-Ready, {pipelinedReadies} Readies written while earlier ones awaited their fsync, "
            + $"{lostWrites} restarts lost unsynced writes, {keptApplied} restarts kept the applied index; replay one with RAFT_SEED=N");
        Assert.That(committed, Is.GreaterThan((ulong)seeds.Count), "the runs must actually commit entries to check anything");
        if (seeds.Count >= 20)
        {
            Assert.That(crashes, Is.GreaterThan(0), "crashes mid-Ready must be exercised");
            Assert.That(lostWrites, Is.GreaterThan(0), "lost unsynced writes must be exercised");
            Assert.That(keptApplied, Is.GreaterThan(0), "restarts keeping the applied index must be exercised");
            if (pipelined)
            {
                Assert.That(pipelinedReadies, Is.GreaterThan(seeds.Count), "writing while an earlier Ready awaits its fsync must be exercised");
            }
        }
    }
}
