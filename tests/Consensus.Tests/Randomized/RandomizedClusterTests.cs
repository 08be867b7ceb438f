using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Randomized;

/// <summary>
/// Many seeds of <see cref="ClusterSimulation"/>: a fault phase checked after every step, then a
/// liveness phase. RAFT_SEED=N replays one seed; RAFT_SOAK_SEEDS=N runs N seeds (a soak).
/// </summary>
public class RandomizedClusterTests
{
    private const int DefaultSeeds = 300;
    private const int FaultSteps = 1500;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("RAFT_SEED", "RAFT_SOAK_SEEDS", first: 1, DefaultSeeds);

    [TestCase(3)]
    [TestCase(5)]
    public void SafetyHoldsUnderFaultsAndTheClusterRecoversOnceTheyHeal(int size)
    {
        var seeds = 0;
        ulong committed = 0;
        int reads = 0, snapshots = 0, restarts = 0, confChanges = 0, joint = 0;
        foreach (var seed in Seeds())
        {
            var simulation = new ClusterSimulation(seed, size);
            simulation.Run(FaultSteps);

            seeds++;
            committed += simulation.CommittedCount;
            reads += simulation.ReadsAnswered;
            snapshots += simulation.SnapshotsDelivered;
            restarts += simulation.Restarts;
            confChanges += simulation.ConfChangesApplied;
            joint += simulation.JointConfigurations;
        }

        TestContext.Out.WriteLine(
            $"{seeds} seeds passed ({size} nodes): {committed} entries committed, {reads} read indexes checked, "
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
        }
    }
}
