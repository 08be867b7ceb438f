using System.Collections.Concurrent;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
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
/// <remarks>
/// Every wait is bounded (<see cref="Waits.Limit"/>) and one that runs out fails naming what it
/// waited for, with every member's state, the crash's arming and the writes still outstanding then.
/// </remarks>
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
        var outstanding = new ConcurrentDictionary<string, ulong>();
        CrashArm? arm = null;
        int next = 0;
        string State() => $"{cluster.Describe()}{Environment.NewLine}crash: {arm?.Describe() ?? "not armed yet"}{Environment.NewLine}writes outstanding (key through member): "
            + (outstanding.IsEmpty ? "none" : string.Join(", ", outstanding.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => $"{w.Key} through {w.Value}")));

        foreach (ulong victim in new ulong[] { 1, 2, 3 })
        {
            var point = (CrashPoint)((seed + (int)victim) % 2);
            TestContext.Out.WriteLine($"member {victim}: crash {point}");
            await WriteAsync(cluster, random, acknowledged, outstanding, () => next++, count: 15, avoid: 0, State);

            // The victim's store durable mid-log, so a restart has a tail to replay.
            await cluster[victim].Mvcc.SyncAsync().AsTask().OrFailAsync($"member {victim}'s store sync (mid-log)", State);
            await WriteAsync(cluster, random, acknowledged, outstanding, () => next++, count: 10, avoid: 0, State);

            arm = CrashArm.On(cluster.Disk(victim), victim, point);
            if (point == CrashPoint.AfterStoreCommitBeforeLogFsync)
            {
                // Once this sync returns, the B+tree holds durably everything the victim applied:
                // the crash is armed then, whether this sync flushed or found nothing to flush (a
                // background sync ran just before it; then no flush arms it, and the crash never
                // comes: the 60 s wait of session 19's seed 2005). A flush of the B+tree arms it
                // earlier (a background sync after the arm). The next log fsync (the probe's entry) crashes.
                await cluster[victim].Mvcc.SyncAsync().AsTask().OrFailAsync($"member {victim}'s store sync (arming the crash)", State);
                arm.ArmNow();
            }

            // A probe write through another member makes the victim write its log; its outcome is
            // not asserted (the victim may be the leader that crashes before acknowledging it).
            var probe = ProbeAsync(cluster[cluster.Members.Keys.First(id => id != victim)], victim, arm.Crashed);
            if (point == CrashPoint.AfterLogFsyncBeforeStoreCommit)
            {
                // The log fsync of the probe arms the crash; the next B+tree write crashes.
                await Task.WhenAny(probe, arm.Crashed).OrFailAsync($"the probe's answer or the crash of member {victim}", State);
                _ = cluster[victim].Mvcc.SyncAsync().AsTask().ContinueWith(t => t.Exception, TaskScheduler.Default);
            }

            await arm.Crashed.OrFailAsync($"member {victim}'s disk to crash {point}", State);
            await cluster.CrashMemberAsync(victim);
            try
            {
                await probe.OrFailAsync($"the probe through the crash of member {victim} to end", State);
            }
            catch (Exception e) when (e is not AssertionException)
            {
                TestContext.Out.WriteLine($"probe through the crash: {e.GetType().Name}");
            }

            long durableIndex = DurableConsistentIndex(cluster.Disk(victim), victim);
            await cluster.WaitForLeaderAsync();

            // Writes go on without the victim, then it comes back and must replay its log tail.
            await WriteAsync(cluster, random, acknowledged, outstanding, () => next++, count: 10, avoid: victim, State);
            await cluster.StartMemberAsync(victim, cluster.InitialMembers);
            await cluster.WaitForLeaderAsync();
            TestContext.Out.WriteLine($"member {victim} restarted: store durable at index {durableIndex}, applied {cluster[victim].Status.RaftAppliedIndex}");

            await AssertAllAgreeAsync(cluster, acknowledged, State);
        }
    }

    /// <summary>
    /// Probe writes through <paramref name="through"/> until one is answered or the victim's disk
    /// has crashed: a probe refused before anything was appended (no leader during an election, a
    /// forwarded proposal dropped) gives the victim nothing to write, and the crash would then wait
    /// on writes that never come. Each probe has a key of its own, so a dropped one that did apply
    /// changes nothing the test checks.
    /// </summary>
    private static async Task ProbeAsync(ReplicatedStore through, ulong victim, Task crashed)
    {
        const int MaxProbes = 200;
        for (int n = 0; n < MaxProbes; n++)
        {
            var put = through.PutAsync(new PutRequest { Key = Key($"probe/{victim}/{n}"), Value = Key("p") }).AsTask();
            await Task.WhenAny(put, crashed);
            if (crashed.IsCompleted || !put.IsFaulted || put.Exception?.InnerException is not (NoLeaderException or ProposalDroppedException))
            {
                await put;
                return;
            }

            TestContext.Out.WriteLine($"probe {n} through member {through.MemberId} refused before the crash: {put.Exception.InnerException.GetType().Name}; another");
            await Task.Delay(TickInterval * 5);
        }

        Assert.Fail($"{MaxProbes} probes through member {through.MemberId} were all refused before member {victim}'s disk crashed.");
    }

    /// <summary>Writes <paramref name="count"/> new keys through random members (not <paramref name="avoid"/>), recording what was acknowledged.</summary>
    private static async Task WriteAsync(ReplicatedCluster cluster, Random random, Dictionary<string, (string, long)> acknowledged, ConcurrentDictionary<string, ulong> outstanding, Func<int> nextKey, int count, ulong avoid, Func<string> state)
    {
        var ids = cluster.Members.Keys.Where(id => id != avoid).ToArray();
        var writes = new List<Task>();
        for (int i = 0; i < count; i++)
        {
            ulong through = ids[random.Next(ids.Length)];
            var member = cluster[through];
            string key = $"k/{nextKey():D5}";
            string value = $"v{random.Next()}";
            writes.Add(Task.Run(async () =>
            {
                // Each key is written once: a retry after a dropped or timed-out proposal could apply
                // it twice, so none is retried — except after NoLeaderException, which says nothing
                // was appended anywhere (an election, or a leader that lost its quorum on a machine
                // so loaded that members took seconds to start: seed 2000 at load 34).
                outstanding[key] = through;
                PutResponse put;
                for (int attempt = 1; ; attempt++)
                {
                    try
                    {
                        put = await member.PutAsync(new PutRequest { Key = Key(key), Value = Key(value) }).AsTask().OrFailAsync($"the put of {key} through member {through} (attempt {attempt})", state);
                        break;
                    }
                    catch (NoLeaderException e) when (attempt < 50)
                    {
                        TestContext.Out.WriteLine($"put of {key} through member {through}, attempt {attempt}: {e.Message}; again");
                        await Task.Delay(TickInterval * 5);
                    }
                }

                outstanding.TryRemove(key, out _);
                lock (acknowledged)
                {
                    acknowledged[key] = (value, put.Header.Revision);
                }
            }));
        }

        await Task.WhenAll(writes).OrFailAsync($"{count} puts", state);
    }

    private static async Task AssertAllAgreeAsync(ReplicatedCluster cluster, Dictionary<string, (string Value, long Revision)> acknowledged, Func<string> state)
    {
        ulong leader = cluster.LeaderId();
        var marker = await ReplicatedReadTests.ClientAsync(() => cluster[leader].PutAsync(new PutRequest { Key = Key("marker"), Value = Key("m") }), state, $"the marker put through the leader {leader}");
        var histories = new Dictionary<ulong, string[]>();
        foreach (var (id, member) in cluster.Members)
        {
            var all = await ReplicatedReadTests.ClientAsync(() => member.RangeAsync(new RangeRequest { Key = Key("\0"), RangeEnd = Key("\0") }), state, $"the whole-keyspace read on member {id}");
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

    /// <summary>
    /// The victim's disk armed to crash at one <see cref="CrashPoint"/>: an arming operation
    /// (<see cref="AfterStoreCommitBeforeLogFsync"/>: a B+tree flush; <see cref="AfterLogFsyncBeforeStoreCommit"/>:
    /// a log fsync) or <see cref="ArmNow"/> arms it, and the first firing operation after that
    /// (a log fsync; a B+tree write or flush) crashes the disk instead of happening.
    /// </summary>
    private sealed class CrashArm
    {
        private readonly TaskCompletionSource _crashed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly CrashPoint _point;
        private volatile string? _armedBy;
        private volatile string? _firedBy;

        private CrashArm(CrashPoint point) => _point = point;

        /// <summary>Completes once the disk has crashed.</summary>
        public Task Crashed => _crashed.Task;

        public static CrashArm On(FaultInjectingFileSystem disk, ulong victim, CrashPoint point)
        {
            var arm = new CrashArm(point);
            string store = $"/member{victim}/mvcc";
            string log = $"/member{victim}/raft";

            // Runs under the disk's lock: one operation at a time.
            disk.FailWhen = op =>
            {
                bool inStore = op.Path.StartsWith(store, StringComparison.Ordinal);
                bool inLog = op.Path.StartsWith(log, StringComparison.Ordinal);
                bool arms = point == CrashPoint.AfterStoreCommitBeforeLogFsync ? inStore && op.Kind == FaultOperationKind.Flush : inLog && op.Kind == FaultOperationKind.Flush;
                bool fires = point == CrashPoint.AfterStoreCommitBeforeLogFsync ? inLog && op.Kind == FaultOperationKind.Flush : inStore && op.Kind is FaultOperationKind.Write or FaultOperationKind.Flush;
                if (arm._armedBy is not null && fires)
                {
                    arm._firedBy = $"{op.Kind} of {op.Path}";
                    disk.FailWhen = null;
                    disk.Crash();
                    arm._crashed.TrySetResult();
                    return true;
                }

                if (arms)
                {
                    arm._armedBy ??= $"{op.Kind} of {op.Path}";
                }

                return false;
            };
            return arm;
        }

        /// <summary>Arms the crash now (the store is durable up to what it applied), unless an operation armed it already.</summary>
        public void ArmNow()
        {
            if (_armedBy is null)
            {
                _armedBy = "the test, after a store sync that flushed nothing";
                TestContext.Out.WriteLine($"crash {_point}: armed by the test (the store's sync found nothing to flush)");
            }
        }

        public string Describe() => $"{_point}, armed by {_armedBy ?? "nothing yet"}, {(_firedBy is null ? "not fired" : $"fired by {_firedBy}")}";
    }
}
