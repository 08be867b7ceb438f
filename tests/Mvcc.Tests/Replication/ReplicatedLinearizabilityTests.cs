using System.Diagnostics;
using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.Linearizability;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// A Jepsen-style check of the replicated store through its public API: concurrent clients put,
/// get, delete, range and compare-and-set a few keys on random members while a nemesis isolates
/// members, moves the leadership, makes links lossy and duplicating, and crashes and restarts
/// members; the recorded history is then checked against <see cref="EtcdKvModel"/> (revisions,
/// create/mod revisions and versions included), an independent sequential model of etcd's KV.
/// </summary>
/// <remarks>
/// Clients behave as real ones do: each waits for one operation at a time, gives up after a
/// timeout (the operation becomes indeterminate: it may or may not have taken effect) and moves on,
/// possibly to another member. A failure the API defines as "nothing happened" (no leader, a
/// proposal refused or overwritten) is recorded as not having happened at all, so the check also
/// proves those errors truthful. Every linearizable read must be consistent with the writes
/// acknowledged before it started, whichever member served it.
/// </remarks>
public sealed class ReplicatedLinearizabilityTests
{
    private static readonly string[] Keys = ["k0", "k1", "k2"];
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(3);

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_LIN_SEED", "REPLICATION_LIN_SOAK_SEEDS", 4100, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task ClientHistoryUnderPartitionsCrashesAndLeaderChangesIsLinearizable(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_LIN_SEED={seed})");
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var run = new Run(cluster, seed);
        await run.ExecuteAsync(clients: 5, faults: 8, maxOperationsPerClient: 150);

        var history = run.History();
        int indeterminate = history.Count(op => op.Indeterminate);
        TestContext.Out.WriteLine($"{history.Count} operations recorded ({indeterminate} indeterminate, {run.DefiniteFailures} definite failures left out); nemesis: {string.Join(", ", run.NemesisLog)}");
        Assert.That(history.Count(op => !op.Indeterminate && op.Input.Success.Any(o => o.Kind == EtcdKvOperationKind.Put)), Is.GreaterThan(20),
            "the run must acknowledge enough writes to mean something");

        var result = LinearizabilityChecker.Check(EtcdKvModel.Instance, history, new LinearizabilityCheckerOptions { Timeout = TimeSpan.FromSeconds(60) });
        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable), result.Explanation);
    }

    /// <summary>
    /// The harness can fail: a serializable read on an isolated follower returns the value from
    /// before a write the leader acknowledged earlier, and the checker rejects that history.
    /// </summary>
    [Test]
    public async Task AStaleSerializableReadFromAnIsolatedFollowerIsCaught()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 4190);
        var clock = Stopwatch.StartNew();
        var history = new List<Operation<EtcdKvRequest, EtcdKvResponse>>();
        ulong leader = cluster.LeaderId();
        ulong follower = cluster.FollowerIds().First();

        long invoked = clock.ElapsedTicks;
        var first = await cluster[leader].PutAsync(new PutRequest { Key = Key("k0"), Value = Key("old") }).AsTask().WaitAsync(Waits.Limit);
        history.Add(Operation.Completed(0, invoked, clock.ElapsedTicks, EtcdKvRequest.Put("k0", "old"), new EtcdKvResponse(first.Header.Revision, true, [EtcdKvOperationResult.PutDone])));
        await cluster.WaitForAppliedAsync(cluster[leader].Status.RaftAppliedIndex);

        cluster.Network.Isolate(follower);
        ulong connected = cluster.Members.Keys.First(id => id != follower);
        await cluster[connected].PutAsync(new PutRequest { Key = Key("k0"), Value = Key("new") }).AsTask().WaitAsync(Waits.Limit);
        history.Add(Operation.Completed(0, clock.ElapsedTicks, clock.ElapsedTicks, EtcdKvRequest.Put("k0", "new"), new EtcdKvResponse(first.Header.Revision + 1, true, [EtcdKvOperationResult.PutDone])));

        invoked = clock.ElapsedTicks;
        var stale = await cluster[follower].RangeAsync(new RangeRequest { Key = Key("k0") }, ReadConsistency.Serializable).AsTask().WaitAsync(Waits.Limit);
        var kvs = stale.Kvs.Select(kv => new EtcdKeyValue(Text(kv.Key), Text(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version)).ToArray();
        history.Add(Operation.Completed(1, invoked, clock.ElapsedTicks, EtcdKvRequest.Get("k0"), new EtcdKvResponse(stale.Header.Revision, true, [new EtcdKvOperationResult(kvs, 0)])));
        Assert.That(Text(stale.Kvs[0].Value), Is.EqualTo("old"), "an isolated follower's local read is stale");

        var result = LinearizabilityChecker.Check(EtcdKvModel.Instance, history);
        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.NotLinearizable), result.Explanation);
    }

    /// <summary>One seeded run: the clients, the nemesis and the recorded operations.</summary>
    private sealed class Run(ReplicatedCluster cluster, int seed)
    {
        private readonly object _gate = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly List<Operation<EtcdKvRequest, EtcdKvResponse>> _operations = [];
        private readonly Dictionary<ulong, ReplicatedStore> _live = new(cluster.Members);
        private int _definiteFailures;
        private int _valueCounter;

        public List<string> NemesisLog { get; } = [];

        public int DefiniteFailures => _definiteFailures;

        public List<Operation<EtcdKvRequest, EtcdKvResponse>> History()
        {
            lock (_gate)
            {
                return [.. _operations.OrderBy(op => op.InvokeTicks)];
            }
        }

        /// <summary>Runs the clients (each pausing 5–30 ms between operations) until the nemesis has injected <paramref name="faults"/> faults.</summary>
        public async Task ExecuteAsync(int clients, int faults, int maxOperationsPerClient)
        {
            using var done = new CancellationTokenSource();
            var workers = Enumerable.Range(0, clients)
                .Select(c => Task.Run(() => ClientAsync(c, new Random((seed * 31) + c), maxOperationsPerClient, done.Token)))
                .ToArray();
            try
            {
                await Task.Run(() => NemesisAsync(new Random(seed * 7919), faults)).WaitAsync(Waits.Limit * 4);
            }
            finally
            {
                done.Cancel();
                await Task.WhenAll(workers).WaitAsync(Waits.Limit);
            }
        }

        private async Task ClientAsync(int client, Random random, int maxOperations, CancellationToken done)
        {
            string? lastSeen = null;
            for (int i = 0; i < maxOperations && !done.IsCancellationRequested; i++)
            {
                await Task.Delay(random.Next(5, 30), CancellationToken.None);
                var request = NextRequest(random, client, ref lastSeen);
                ReplicatedStore member = PickMember(random);
                long invoked = _clock.ElapsedTicks;
                Task<EtcdKvResponse> call = EtcdKvCalls.ExecuteAsync(member, request, ReadConsistency.Linearizable);
                try
                {
                    var response = await call.WaitAsync(ClientTimeout, CancellationToken.None);
                    long completed = _clock.ElapsedTicks;
                    lastSeen = response.Results.SelectMany(r => r.Kvs).Select(kv => kv.Value).LastOrDefault() ?? lastSeen;
                    Record(Operation.Completed(client, invoked, completed, request, response));
                }
                catch (Exception e) when (IsDefiniteFailure(e))
                {
                    // The API says nothing was appended: the operation never happened.
                    Interlocked.Increment(ref _definiteFailures);
                    await Task.Delay(TickInterval * 3, CancellationToken.None);
                }
                catch (Exception e) when (e is TimeoutException or NodeStoppedException or ObjectDisposedException or ProposalDroppedException or OperationCanceledException)
                {
                    // Unknown outcome (timed out, or the member went down under the call): the
                    // client gives up; the operation may still take effect later.
                    _ = call.ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
                    Record(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(client, invoked, request));
                    await Task.Delay(TickInterval * 3, CancellationToken.None);
                }
            }
        }

        private static bool IsDefiniteFailure(Exception e) =>
            e is NoLeaderException || (e is ProposalDroppedException dropped && dropped.Reason != ProposalDropReason.TimedOut);

        private void Record(Operation<EtcdKvRequest, EtcdKvResponse> operation)
        {
            lock (_gate)
            {
                _operations.Add(operation);
            }
        }

        private ReplicatedStore PickMember(Random random)
        {
            lock (_gate)
            {
                var live = _live.Keys.Order().ToArray();
                return _live[live[random.Next(live.Length)]];
            }
        }

        private EtcdKvRequest NextRequest(Random random, int client, ref string? lastSeen)
        {
            string key = Keys[random.Next(Keys.Length)];
            int roll = random.Next(100);
            if (roll < 35)
            {
                return EtcdKvRequest.Put(key, NewValue(client));
            }

            if (roll < 65)
            {
                return EtcdKvRequest.Get(key);
            }

            if (roll < 75)
            {
                return EtcdKvRequest.Delete(key);
            }

            if (roll < 82)
            {
                return EtcdKvRequest.Range("k0", "k9");
            }

            // Compare-and-set on what this client last saw (often stale: then it fails and reads).
            return EtcdKvRequest.CompareValueAndPut(key, lastSeen ?? "none", NewValue(client));
        }

        private string NewValue(int client) => $"c{client}-{Interlocked.Increment(ref _valueCounter)}";

        /// <summary>
        /// <paramref name="faults"/> times, after 100–300 ms, one fault: isolate a member for a while,
        /// transfer the leadership, make every link lossy/duplicating/reordering for a while, or
        /// crash a member and restart it from its disk. At most one member is faulty at a time, so
        /// a quorum stays available.
        /// </summary>
        private async Task NemesisAsync(Random random, int faults)
        {
            for (int fault = 0; fault < faults; fault++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(random.Next(100, 300)), CancellationToken.None);
                ulong victim = (ulong)random.Next(1, 4);
                switch (random.Next(4))
                {
                    case 0:
                        NemesisLog.Add($"isolate {victim}");
                        cluster.Network.Isolate(victim);
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(100, 500)), CancellationToken.None);
                        cluster.Network.Heal();
                        break;
                    case 1:
                        ulong leader = cluster.Members.Values.Select(m => m.Status.LeaderId).FirstOrDefault(l => l != 0);
                        if (leader != 0 && leader != victim && cluster.Members.TryGetValue(leader, out var current))
                        {
                            NemesisLog.Add($"transfer {leader}->{victim}");
                            try
                            {
                                await current.TransferLeadershipAsync(victim, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None);
                            }
                            catch (Exception e) when (e is TimeoutException or NoLeaderException or InvalidOperationException or NodeStoppedException or ProposalDroppedException)
                            {
                                // A transfer may be refused or overtaken; the faults go on.
                            }
                        }

                        break;
                    case 2:
                        NemesisLog.Add("lossy links");
                        cluster.Network.SetAllLinkFaults(new LinkFaults { DropRate = 0.1, DuplicateRate = 0.1, ReorderRate = 0.1 });
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(100, 400)), CancellationToken.None);
                        cluster.Network.SetAllLinkFaults(LinkFaults.None);
                        break;
                    default:
                        NemesisLog.Add($"crash {victim}");
                        lock (_gate)
                        {
                            _live.Remove(victim);
                        }

                        await cluster.CrashMemberAsync(victim);
                        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(50, 300)), CancellationToken.None);
                        var restarted = await cluster.StartMemberAsync(victim, cluster.InitialMembers);
                        lock (_gate)
                        {
                            _live[victim] = restarted;
                        }

                        break;
                }
            }
        }
    }
}
