using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// Random crashes and restarts (unsynced writes dropped or torn by the fault-injecting disk) on a
/// lossy, duplicating, reordering network under concurrent proposals from every node, many
/// seeds: every proposal that returned success is applied exactly once, in the same order, on
/// every node; then, faults healed, the cluster converges.
/// </summary>
/// <remarks>Seeds: RAFT_CLUSTER_SEED replays one; RAFT_CLUSTER_SOAK_SEEDS runs that many (default 6).</remarks>
[TestFixture]
public sealed class RandomCrashRestartTests
{
    internal static IReadOnlyList<int> Seeds => TestSeeds.Choose("RAFT_CLUSTER_SEED", "RAFT_CLUSTER_SOAK_SEEDS", 1, 6);

    [Test]
    public void EveryAcknowledgedProposalIsAppliedOnceInOneOrderEverywhere()
    {
        foreach (int seed in Seeds)
        {
            TestContext.Out.WriteLine($"seed {seed} (replay with RAFT_CLUSTER_SEED={seed})");
            using var cluster = RunScenario(seed, TimeSpan.FromSeconds(4));
            var verdict = cluster.CheckHistories(requireAllCaughtUp: true);
            Assert.That(verdict, Is.Empty, $"seed {seed} (replay with RAFT_CLUSTER_SEED={seed})");
            Assert.That(cluster.Acknowledged, Is.Not.Empty, $"seed {seed}: some proposals must succeed for the run to mean anything");
            Assert.That(cluster.OffThreadEvents, Is.Empty, $"seed {seed}: work escaped the driving thread (first: {(cluster.OffThreadEvents.Count > 0 ? cluster.OffThreadEvents[0] : "none")}), so the run depends on timing");
            TestContext.Out.WriteLine($"  {cluster.Acknowledged.Count} acknowledged, {cluster.Network.DroppedMessages} messages dropped, {cluster.Network.DuplicatedMessages} duplicated");
        }
    }

    /// <summary>
    /// The same with 4 KiB WAL segments, so that each node's log cuts, releases and recycles
    /// segments all through the run (a recycled segment's torn tail reads as its previous life's
    /// bytes, not zeros), crashes landing anywhere in that cycle.
    /// </summary>
    [Test]
    public void EveryAcknowledgedProposalIsAppliedOnceInOneOrderEverywhereWhileLogsRecycleSegments()
    {
        int recycled = 0;
        foreach (int seed in Seeds)
        {
            TestContext.Out.WriteLine($"seed {seed} (replay with RAFT_CLUSTER_SEED={seed})");
            using var cluster = RunScenario(seed, TimeSpan.FromSeconds(4), (_, options) => options with { Log = options.Log! with { Wal = options.Log.Wal with { SegmentSizeBytes = 4096 } } });
            var verdict = cluster.CheckHistories(requireAllCaughtUp: true);
            Assert.That(verdict, Is.Empty, $"seed {seed} (replay with RAFT_CLUSTER_SEED={seed})");
            Assert.That(cluster.Acknowledged, Is.Not.Empty, $"seed {seed}: some proposals must succeed for the run to mean anything");
            int present = RecycledSegmentsOnDisk(cluster);
            recycled += present;
            TestContext.Out.WriteLine($"  {cluster.Acknowledged.Count} acknowledged, {present} recycled segments on the nodes' disks at the end");
        }

        Assert.That(recycled, Is.GreaterThan(0), "the logs recycled segments");
    }

    /// <summary>Segments whose header carries the recycled flag (bit 0 of the header payload's bytes 12-15), over every node's WAL directory.</summary>
    private static int RecycledSegmentsOnDisk(SimulatedCluster cluster)
    {
        int recycled = 0;
        foreach (ulong id in cluster.RunningIds)
        {
            var disk = cluster[id].Disk;
            foreach (string path in disk.AllFiles().Where(p => p.StartsWith("/raft/wal/", StringComparison.Ordinal) && p.EndsWith(".wal", StringComparison.Ordinal)))
            {
                using var file = disk.Open(path, EmbeddedRaft.Storage.IO.FileOpenMode.ReadOnly);
                var flags = new byte[4];
                file.Read(24 + 12, flags);
                recycled += (int)(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(flags) & 1);
            }
        }

        return recycled;
    }

    /// <summary>
    /// The safety phase (faults for <paramref name="faultPhase"/> of simulated time), then the
    /// liveness phase (faults healed, every node running, a last proposal applied everywhere).
    /// </summary>
    internal static SimulatedCluster RunScenario(int seed, TimeSpan faultPhase, Func<ulong, RaftNodeOptions, RaftNodeOptions>? customize = null)
    {
        int size = seed % 2 == 0 ? 5 : 3;
        var cluster = new SimulatedCluster(seed, size, customize);
        try
        {
            cluster.StartAll();
            cluster.Network.SetAllLinkFaults(new LinkFaults
            {
                DropRate = 0.02,
                DuplicateRate = 0.02,
                ReorderRate = 0.02,
                DelayJitter = TimeSpan.FromMilliseconds(3),
            });

            var random = cluster.Random;
            var pending = new List<Task<ulong>>();
            var down = new List<ulong>();
            var end = cluster.Time.GetUtcNow() + faultPhase;
            while (cluster.Time.GetUtcNow() < end)
            {
                var running = cluster.RunningIds.ToList();
                int proposals = random.Next(0, 4);
                for (int i = 0; i < proposals && running.Count > 0; i++)
                {
                    pending.Add(cluster.Propose(running[random.Next(running.Count)]));
                }

                double roll = random.NextDouble();
                if (roll < 0.03 && down.Count < (size - 1) / 2 && running.Count > 0)
                {
                    ulong victim = running[random.Next(running.Count)];
                    cluster.Crash(victim);
                    down.Add(victim);
                }
                else if (roll < 0.08 && down.Count > 0)
                {
                    ulong back = down[random.Next(down.Count)];
                    down.Remove(back);
                    cluster.Start(back);
                }

                cluster.RunFor(TimeSpan.FromMilliseconds(random.Next(1, 30)));
            }

            // Liveness: heal, restart everyone, and wait for one last proposal everywhere.
            cluster.Network.Heal();
            foreach (ulong id in down)
            {
                cluster.Start(id);
            }

            cluster.RunUntil(() => pending.All(t => t.IsCompleted), "proposals of the fault phase to finish (succeed or fail)");
            ulong leader = cluster.WaitForLeader();
            cluster.ProposeAndWait(leader, "final");
            cluster.WaitUntilAppliedEverywhere("final");
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }
}
