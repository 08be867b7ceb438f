using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Randomized;

/// <summary>
/// Many seeds of <see cref="ClusterSimulation"/>: a fault phase checked after every step, then a
/// liveness phase, per cluster size and <see cref="SimulationProfile"/> (host model, read mode,
/// clocks). RAFT_SEED=N replays one seed; RAFT_SOAK_SEEDS=N runs N seeds per case (a soak).
/// </summary>
public class RandomizedClusterTests
{
    private const int DefaultSeeds = 300;
    private const int FaultSteps = 1500;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("RAFT_SEED", "RAFT_SOAK_SEEDS", first: 1, DefaultSeeds);

    [TestCase(3, SimulationProfile.Mixed)]
    [TestCase(5, SimulationProfile.Mixed)]
    [TestCase(3, SimulationProfile.HeldReadies)]
    [TestCase(5, SimulationProfile.HeldReadies)]
    [TestCase(3, SimulationProfile.PipelinedReadies)]
    [TestCase(5, SimulationProfile.PipelinedReadies)]
    [TestCase(3, SimulationProfile.LeaseLockstep)]
    [TestCase(5, SimulationProfile.LeaseLockstep)]
    [TestCase(3, SimulationProfile.LeaseSkewed)]
    [TestCase(5, SimulationProfile.LeaseSkewed)]
    public void SafetyHoldsUnderFaultsAndTheClusterRecoversOnceTheyHeal(int size, SimulationProfile profile)
    {
        var seeds = 0;
        ulong committed = 0;
        int reads = 0, snapshots = 0, restarts = 0, confChanges = 0, joint = 0, holds = 0, stepsWhileHeld = 0, besideOthers = 0;
        foreach (var seed in Seeds())
        {
            var simulation = new ClusterSimulation(seed, size, profile: profile);
            simulation.Run(FaultSteps);
            holds += simulation.ReadyHolds;
            stepsWhileHeld += simulation.StepsWhileHeld;
            besideOthers += simulation.ReadiesTakenBesideOthers;

            seeds++;
            committed += simulation.CommittedCount;
            reads += simulation.ReadsAnswered;
            snapshots += simulation.SnapshotsDelivered;
            restarts += simulation.Restarts;
            confChanges += simulation.ConfChangesApplied;
            joint += simulation.JointConfigurations;
        }

        TestContext.Out.WriteLine(
            $"{seeds} seeds passed ({size} nodes, {profile}): {committed} entries committed, {reads} read indexes checked, {holds} Readies held with {stepsWhileHeld} steps and ticks meanwhile ({besideOthers} taken beside an earlier outstanding one), "
            + $"{snapshots} snapshots delivered, {restarts} restarts, {confChanges} configuration changes applied ({joint} entering joint); "
            + "replay one with RAFT_SEED=N, soak with RAFT_SOAK_SEEDS=N");
        Assert.That(committed, Is.GreaterThan((ulong)seeds), "the runs must actually commit entries to check anything");
        if (seeds >= 20)
        {
            Assert.That(reads, Is.GreaterThan(0), "read indexes must be exercised");
            Assert.That(snapshots, Is.GreaterThan(0), "snapshots must be exercised");
            Assert.That(restarts, Is.GreaterThan(0), "restarts must be exercised");
            Assert.That(confChanges, Is.GreaterThan(seeds / 2), "membership changes must be exercised");
            Assert.That(joint, Is.GreaterThan(0), "joint configurations must be exercised");
            if (profile != SimulationProfile.Mixed)
            {
                Assert.That(stepsWhileHeld, Is.GreaterThan(seeds), "stepping and ticking while a Ready is outstanding must be exercised");
            }

            if (profile == SimulationProfile.PipelinedReadies)
            {
                Assert.That(besideOthers, Is.GreaterThan(seeds), "taking a Ready while earlier ones are outstanding must be exercised");
            }
        }
    }

    /// <summary>
    /// The checker can fail: when the leader's clock stops for a while (a process pause, far
    /// outside the drift bound) while the others keep time, some seed must produce a stale lease
    /// read, and the linearizability check must catch it. Seeds from 1 up to a bound; the first
    /// caught ends the test.
    /// </summary>
    [Test]
    public void TheReadCheckerCatchesStaleLeaseReadsWhenTheLeadersClockStopsBeyondTheBound()
    {
        const int maxSeeds = 400;
        for (var seed = 1; seed <= maxSeeds; seed++)
        {
            var simulation = new ClusterSimulation(seed, 3, profile: SimulationProfile.LeaseBeyondDriftBound);
            try
            {
                simulation.RunFaults(FaultSteps);
            }
            catch (AssertionException ex) when (ex.Message.StartsWith("read index:", StringComparison.Ordinal))
            {
                TestContext.Out.WriteLine($"caught at seed {seed}: {ex.Message}");
                return;
            }
        }

        Assert.Fail($"no stale lease read caught in {maxSeeds} seeds with clocks beyond the drift bound: the read checker may be blind");
    }
}
