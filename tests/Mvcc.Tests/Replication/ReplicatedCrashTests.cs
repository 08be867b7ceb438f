using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Crash and restart of each member at the two points that matter for exactly-once apply: after
/// the store's B+tree commit reached the disk but before the next write-ahead-log fsync, and after
/// a log fsync but before the next B+tree commit. Nothing acknowledged may be lost, and nothing may
/// be applied twice: every key keeps the revision its write was acknowledged with, and the
/// restarted member's whole history equals the others'.
/// </summary>
public sealed class ReplicatedCrashTests
{
    public enum CrashPoint
    {
        AfterStoreCommitBeforeLogFsync,
        AfterLogFsyncBeforeStoreCommit,
    }

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 2000, 1);

    /// <summary>Crashes members 1, 2 and 3 in turn (whichever leads), each at one of the two points, alternating (the seed picks the first).</summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task EveryMemberCrashedAndRestartedKeepsEveryAcknowledgedWriteAndAppliesNothingTwice(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var acknowledged = new Dictionary<string, (string Value, long Revision)>();
        int next = 0;

        foreach (ulong victim in new ulong[] { 1, 2, 3 })
        {
            var point = (CrashPoint)((seed + (int)victim) % 2);
            TestContext.Out.WriteLine($"member {victim}: crash {point}");
            await WriteAsync(cluster, random, acknowledged, () => next++, count: 15, avoid: 0);

            // The victim's store durable mid-log, so a restart has a tail to replay.
            await cluster[victim].Mvcc.SyncAsync().AsTask().WaitAsync(Waits.Limit);
            await WriteAsync(cluster, random, acknowledged, () => next++, count: 10, avoid: 0);

            var crashed = Arm(cluster.Disk(victim), victim, point);
            if (point == CrashPoint.AfterStoreCommitBeforeLogFsync)
            {
                // The B+tree flush arms the crash; the next log fsync (the probe's entry) crashes.
                await cluster[victim].Mvcc.SyncAsync().AsTask().WaitAsync(Waits.Limit);
            }

            // A probe write through another member makes the victim write its log; its outcome is
            // not asserted (the victim may be the leader that crashes before acknowledging it).
            var probe = cluster[cluster.Members.Keys.First(id => id != victim)].PutAsync(new PutRequest { Key = Key($"probe/{victim}"), Value = Key("p") }).AsTask();
            if (point == CrashPoint.AfterLogFsyncBeforeStoreCommit)
            {
                // The log fsync of the probe arms the crash; the next B+tree write crashes.
                await Task.WhenAny(probe, crashed.Task).WaitAsync(Waits.Limit);
                _ = cluster[victim].Mvcc.SyncAsync().AsTask().ContinueWith(t => t.Exception, TaskScheduler.Default);
            }

            await crashed.Task.WaitAsync(Waits.Limit);
            await cluster.CrashMemberAsync(victim);
            try
            {
                await probe.WaitAsync(Waits.Limit);
            }
            catch (Exception e)
            {
                TestContext.Out.WriteLine($"probe through the crash: {e.GetType().Name}");
            }

            long durableIndex = DurableConsistentIndex(cluster.Disk(victim), victim);
            await cluster.WaitForLeaderAsync();

            // Writes go on without the victim, then it comes back and must replay its log tail.
            await WriteAsync(cluster, random, acknowledged, () => next++, count: 10, avoid: victim);
            await cluster.StartMemberAsync(victim, cluster.InitialMembers);
            await cluster.WaitForLeaderAsync();
            TestContext.Out.WriteLine($"member {victim} restarted: store durable at index {durableIndex}, applied {cluster[victim].Status.RaftAppliedIndex}");

            await AssertAllAgreeAsync(cluster, acknowledged);
        }
    }

    /// <summary>Arms the victim's disk to crash at <paramref name="point"/>; the task completes when it has.</summary>
    private static TaskCompletionSource Arm(FaultInjectingFileSystem disk, ulong victim, CrashPoint point)
    {
        var crashed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bool armed = false;
        string store = $"/member{victim}/mvcc";
        string log = $"/member{victim}/raft";
        disk.FailWhen = op =>
        {
            bool inStore = op.Path.StartsWith(store, StringComparison.Ordinal);
            bool inLog = op.Path.StartsWith(log, StringComparison.Ordinal);
            bool arms = point == CrashPoint.AfterStoreCommitBeforeLogFsync ? inStore && op.Kind == FaultOperationKind.Flush : inLog && op.Kind == FaultOperationKind.Flush;
            bool fires = point == CrashPoint.AfterStoreCommitBeforeLogFsync ? inLog && op.Kind == FaultOperationKind.Flush : inStore && op.Kind is FaultOperationKind.Write or FaultOperationKind.Flush;
            if (armed && fires)
            {
                disk.FailWhen = null;
                disk.Crash();
                crashed.TrySetResult();
                return true;
            }

            armed |= arms;
            return false;
        };
        return crashed;
    }

    /// <summary>Writes <paramref name="count"/> new keys through random members (not <paramref name="avoid"/>), recording what was acknowledged.</summary>
    private static async Task WriteAsync(ReplicatedCluster cluster, Random random, Dictionary<string, (string, long)> acknowledged, Func<int> nextKey, int count, ulong avoid)
    {
        var ids = cluster.Members.Keys.Where(id => id != avoid).ToArray();
        var writes = new List<Task>();
        for (int i = 0; i < count; i++)
        {
            var member = cluster[ids[random.Next(ids.Length)]];
            string key = $"k/{nextKey():D5}";
            string value = $"v{random.Next()}";
            writes.Add(Task.Run(async () =>
            {
                // Each key is written once: a retry after a dropped proposal could apply it twice, so none is retried.
                var put = await member.PutAsync(new PutRequest { Key = Key(key), Value = Key(value) }).AsTask().WaitAsync(Waits.Limit);
                lock (acknowledged)
                {
                    acknowledged[key] = (value, put.Header.Revision);
                }
            }));
        }

        await Task.WhenAll(writes).WaitAsync(Waits.Limit);
    }

    private static async Task AssertAllAgreeAsync(ReplicatedCluster cluster, Dictionary<string, (string Value, long Revision)> acknowledged)
    {
        ulong leader = cluster.LeaderId();
        var marker = await ReplicatedReadTests.ClientAsync(() => cluster[leader].PutAsync(new PutRequest { Key = Key("marker"), Value = Key("m") }));
        var histories = new Dictionary<ulong, string[]>();
        foreach (var (id, member) in cluster.Members)
        {
            var all = await ReplicatedReadTests.ClientAsync(() => member.RangeAsync(new RangeRequest { Key = Key("\0"), RangeEnd = Key("\0") }));
            Assert.That(all.Header.Revision, Is.EqualTo(marker.Header.Revision), $"member {id}: one revision per write, none applied twice");
            var kvs = all.Kvs.ToDictionary(kv => Text(kv.Key));
            foreach (var (key, (value, revision)) in acknowledged)
            {
                Assert.That(kvs.TryGetValue(key, out var kv), Is.True, $"member {id} lost acknowledged {key}");
                Assert.That(Text(kv!.Value), Is.EqualTo(value), $"member {id}, {key}");
                Assert.That(kv.ModRevision, Is.EqualTo(revision), $"member {id}, {key}: applied at the acknowledged revision, once");
                Assert.That(kv.Version, Is.EqualTo(1), $"member {id}, {key}: written once");
            }

            histories[id] = all.Kvs.Select(kv => $"{Text(kv.Key)}={Text(kv.Value)} c{kv.CreateRevision} m{kv.ModRevision} v{kv.Version}").ToArray();
        }

        foreach (var (id, history) in histories)
        {
            Assert.That(history, Is.EqualTo(histories[leader]), $"member {id} against the leader {leader}");
        }
    }

    /// <summary>The consistent index the victim's store holds durably after the crash (opened read-only beside, then closed).</summary>
    private static long DurableConsistentIndex(FaultInjectingFileSystem disk, ulong victim)
    {
        using var store = MvccStore.Open(disk, $"/member{victim}/mvcc", MvccStoreOptions.Default with { Durability = MvccDurability.NoSync });
        return (long)store.ConsistentIndex;
    }
}
