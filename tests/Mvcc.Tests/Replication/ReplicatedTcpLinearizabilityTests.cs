using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.Linearizability;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// An adversary of the TCP path: a Jepsen-style check of the replicated store through its public
/// API with every member on a real <see cref="Consensus.Transport.Tcp.TcpTransport"/> behind a fault
/// proxy (<see cref="TcpReplicatedCluster"/>), so a follower's entries live in received frames that
/// are lent, given back and reused (and poisoned with <c>0xDB</c> when given back, in this test run).
/// Concurrent clients put, delete, get, range and compare-and-swap (one key, and a move between two
/// keys) overlapping keys with large values, with timeouts and retries, while a nemesis cuts and
/// delays connections, black-holes a member's inbound traffic (an isolated leader's uncommitted
/// entries are later truncated by a conflicting log), crashes members (disk included), stops and
/// restarts the leader, stops a follower until it needs a snapshot (and sometimes cuts that
/// snapshot's stream halfway) and transfers the leadership.
/// </summary>
/// <remarks>
/// <para>Checked, after the faults heal: the history is linearizable against <see cref="EtcdKvModel"/>
/// (an unknown outcome is recorded as such, then settled from the store's revisions where they settle
/// it: <see cref="IndeterminateOutcomes"/>; a failure the API defines as "nothing happened" as not
/// having happened); every member reaches the leader's revision holding the same keys, values,
/// create/mod revisions and versions at every revision up to it, and after a compaction the same
/// <c>HashKV</c>; and no value a client read, nor any value a member holds, is anything but a value
/// some client wrote (a poisoned frame shows as <c>0xDB</c> bytes, which decode to U+FFFD).</para>
/// <para>Seeds: REPLICATION_TCP_LIN_SEED replays one; REPLICATION_TCP_LIN_SOAK_SEEDS runs that many
/// (default 2). REPLICATION_TCP_LIN_BREAK_FRAME_RULE=1 makes every member break the received-frame
/// rule (<c>TestOnlyBrokenRules.ReturnReceivedFramesWhenStepped</c>), to show the test failing.</para>
/// </remarks>
public sealed class ReplicatedTcpLinearizabilityTests
{
    private const int Faults = 14;
    private static readonly string[] Keys = ["k0", "k1", "k2", "k3"];
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(2);

    /// <summary>How long a lagging follower stays down waiting for the others' snapshots to pass it: beyond that the clients' writes have stopped (their operations used up) and none will come.</summary>
    private static readonly TimeSpan SnapshotWaitLimit = TimeSpan.FromSeconds(15);

    /// <summary>
    /// A client's pause after a failed call before its next try or operation, as etcd's clientv3
    /// paces its retries (<c>backoffLinearWithJitter</c>: a fixed wait with ±10 % jitter, so clients
    /// that failed together do not retry in lockstep): 30 ms ± 10 %, drawn from the client's seeded
    /// random. It paces the test's load like a real client's; nothing waits on it.
    /// </summary>
    private static TimeSpan BackOff(Random random) => TimeSpan.FromMilliseconds(30 * (0.9 + (0.2 * random.NextDouble())));

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_TCP_LIN_SEED", "REPLICATION_TCP_LIN_SOAK_SEEDS", 5200, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task ClientHistoryOverTcpUnderCutsCrashesSnapshotsAndLeaderChangesIsLinearizable(int seed)
    {
        bool breakRule = Environment.GetEnvironmentVariable("REPLICATION_TCP_LIN_BREAK_FRAME_RULE") == "1";
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_TCP_LIN_SEED={seed}){(breakRule ? "; every member BREAKS the received-frame rule" : string.Empty)}");
        await using var cluster = await TcpReplicatedCluster.StartAsync(3, seed, breakRule ? ReceivedFramePoisoning.BreakingTheReturnRule : null);
        var run = new Run(cluster, seed);
        var clock = Stopwatch.StartNew();
        IReadOnlyList<IReadOnlyDictionary<string, EtcdKeyValue>> revisions;
        try
        {
            await run.ExecuteAsync(clients: 5, maxOperationsPerClient: 400);
            TestContext.Out.WriteLine($"faults done at {clock.Elapsed.TotalSeconds:0.0} s; nemesis: {string.Join(", ", run.NemesisLog)}");
            Assert.That(run.Foreign, Is.Empty, "values no client wrote (0xDB: a poisoned received frame) reached a client");
            revisions = await AssertEveryMemberConvergesAsync(cluster, run);
        }
        finally
        {
            TestContext.Out.WriteLine($"state at {clock.Elapsed.TotalSeconds:0.0} s:{Environment.NewLine}{cluster.Describe()}");
        }

        var recorded = run.History();
        int writes = recorded.Count(op => !op.Indeterminate && op.Output!.Succeeded && op.Input.Success.Any(o => o.Kind == EtcdKvOperationKind.Put));
        var (history, settled, notApplied, reads, unknown) = IndeterminateOutcomes.Settle(recorded, revisions, run.Now);
        TestContext.Out.WriteLine($"{recorded.Count} operations recorded ({writes} acknowledged writes, {recorded.Count(op => op.Indeterminate)} of unknown outcome: "
            + $"{settled} writes settled from the revisions, {notApplied} writes left out as not applied, {reads} reads left out, {unknown} still unknown; {run.DefiniteFailures} definite failures retried)");
        Assert.That(run.Foreign, Is.Empty, "values no client wrote (0xDB: a poisoned received frame) are in a member's store");
        Assert.That(writes, Is.GreaterThan(30), "the run must acknowledge enough writes to mean something");
        Assert.That(cluster.Proxies.Values.Sum(p => p.SnapshotConnections), Is.GreaterThan(0), "a lagging follower caught up from a snapshot streamed over TCP");
        TestContext.Out.WriteLine($"received frames given back to their pools {cluster.FramesReturned}, rented again {cluster.FramesReused}");
        Assert.That(cluster.FramesReused, Is.GreaterThan(0), "followers borrowed received frames, gave them back and reused them");

        var checking = Stopwatch.StartNew();
        var result = LinearizabilityChecker.Check(EtcdKvModel.Instance, history, new LinearizabilityCheckerOptions { Timeout = TimeSpan.FromSeconds(60) });
        TestContext.Out.WriteLine($"checked in {checking.Elapsed.TotalSeconds:0.0} s ({result.Steps:N0} steps; {clock.Elapsed.TotalSeconds:0.0} s in all): {result.Verdict}");
        Assert.That(result.Verdict, Is.EqualTo(LinearizabilityVerdict.Linearizable), result.Explanation);
    }

    /// <summary>
    /// The liveness half: with every fault healed, all three members run and reach the leader's
    /// revision, and hold the same keys (values, create/mod revisions, versions) at every revision up to
    /// it, each value one some client wrote; after a compaction through the log, their HashKV at that
    /// revision is equal too. Returns the revisions (for settling outcomes).
    /// </summary>
    private static async Task<IReadOnlyList<IReadOnlyDictionary<string, EtcdKeyValue>>> AssertEveryMemberConvergesAsync(TcpReplicatedCluster cluster, Run run)
    {
        foreach (var proxy in cluster.Proxies.Values)
        {
            proxy.Delay = TimeSpan.Zero;
            proxy.BlackHole(false);
        }

        var members = cluster.Running;
        Assert.That(members.Keys, Is.EquivalentTo(cluster.InitialMembers.Select(m => m.Id)), "every member runs after the faults");
        foreach (var (id, member) in members)
        {
            Assert.That(member.Status.StoppedCause, Is.Null, $"member {id}'s node stopped for good:{Environment.NewLine}{cluster.Describe()}");
        }

        ulong leader = await cluster.WaitForLeaderAsync();

        // A linearizable read on the leader: every write acknowledged to any client is at or below its revision.
        long at = (await ReplicatedReadTests.ClientAsync(() => members[leader].RangeAsync(new RangeRequest { Key = Key("-") }), cluster.Describe, "a linearizable read on the leader")).Header.Revision;
        var revisions = new Dictionary<ulong, IReadOnlyList<IReadOnlyDictionary<string, EtcdKeyValue>>>();
        foreach (var (id, member) in members)
        {
            // A linearizable read first makes the member apply up to at least `at`; then its past, read locally.
            await ReplicatedReadTests.ClientAsync(() => member.RangeAsync(new RangeRequest { Key = Key("-") }), cluster.Describe, $"a linearizable read on member {id}");
            revisions[id] = await IndeterminateOutcomes.ReadRevisionsAsync(member, at);
            foreach (var kv in revisions[id][(int)at].Values)
            {
                run.CheckValue($"member {id}'s store at revision {at}", kv.Key, kv.Value);
            }
        }

        var reference = revisions[leader];
        foreach (var (id, states) in revisions)
        {
            for (int revision = 1; revision <= at; revision++)
            {
                Assert.That(states[revision].Values.OrderBy(kv => kv.Key, StringComparer.Ordinal), Is.EqualTo(reference[revision].Values.OrderBy(kv => kv.Key, StringComparer.Ordinal)),
                    $"member {id}'s keys at revision {revision} against leader {leader}'s");
            }
        }

        long compactAt = Math.Max(1, at - 10);
        await ReplicatedReadTests.ClientAsync(
            async ValueTask<long> () =>
            {
                try
                {
                    await members[leader].CompactAsync(compactAt, physical: true);
                }
                catch (RevisionCompactedException)
                {
                    // An earlier try that timed out was applied.
                }

                return compactAt;
            },
            cluster.Describe,
            $"a compaction at {compactAt}");
        var hashes = new Dictionary<ulong, (uint Hash, long CompactRevision)>();
        foreach (var (id, member) in members)
        {
            await ReplicatedReadTests.ClientAsync(() => member.RangeAsync(new RangeRequest { Key = Key("-") }), cluster.Describe, $"a linearizable read on member {id}");
            var hash = await member.HashKVAsync(at).AsTask().OrFailAsync($"HashKV at {at} on member {id}", cluster.Describe);
            hashes[id] = (hash.Hash, hash.CompactRevision);
        }

        TestContext.Out.WriteLine($"every member equal at revisions 1..{at}; compacted at {compactAt}, HashKV at {at}: " + string.Join(", ", hashes.Select(h => $"member {h.Key} {h.Value.Hash:x8} (compacted {h.Value.CompactRevision})")));
        Assert.That(hashes.Values.Distinct().Count(), Is.EqualTo(1), $"every member's HashKV at revision {at}: {string.Join(", ", hashes)}");
        return reference;
    }

    /// <summary>The kinds of fault the nemesis injects; every kind comes once in the first rounds (in a seeded order).</summary>
    private enum Fault
    {
        CutConnections,
        DelayInbound,
        BlackHoleInbound,
        CrashMember,
        StopLeader,
        LagFollowerToSnapshot,
        TransferLeadership,
    }

    /// <summary>One seeded run: the clients, the nemesis and the recorded operations.</summary>
    private sealed class Run(TcpReplicatedCluster cluster, int seed)
    {
        private readonly Lock _gate = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly List<Operation<EtcdKvRequest, EtcdKvResponse>> _operations = [];
        private readonly ConcurrentDictionary<string, bool> _written = new();
        private int _definiteFailures;
        private int _valueCounter;

        public List<string> NemesisLog { get; } = [];

        /// <summary>Every value seen that no client wrote, with where it was seen.</summary>
        public ConcurrentQueue<string> Foreign { get; } = new();

        public int DefiniteFailures => Volatile.Read(ref _definiteFailures);

        /// <summary>The history's clock now.</summary>
        public long Now => _clock.ElapsedTicks;

        public List<Operation<EtcdKvRequest, EtcdKvResponse>> History()
        {
            lock (_gate)
            {
                return [.. _operations.OrderBy(op => op.InvokeTicks)];
            }
        }

        /// <summary>Runs the clients until the nemesis has injected <see cref="Faults"/> faults (each client at most <paramref name="maxOperationsPerClient"/> operations).</summary>
        public async Task ExecuteAsync(int clients, int maxOperationsPerClient)
        {
            using var done = new CancellationTokenSource();
            var workers = Enumerable.Range(0, clients)
                .Select(c => Task.Run(() => ClientAsync(c, new Random((seed * 31) + c), maxOperationsPerClient, done.Token)))
                .ToArray();
            try
            {
                // Seeds one apart give System.Random streams that start alike: the nemesis's seed is mixed first.
                int nemesisSeed = (int)BitOperations.RotateLeft((uint)seed * 0x9E3779B1u, 13);
                await Task.Run(() => NemesisAsync(new Random(nemesisSeed))).OrFailAsync("the nemesis to finish its faults", cluster.Describe, Waits.Limit * 2);
            }
            finally
            {
                done.Cancel();
                await Task.WhenAll(workers).OrFailAsync("the clients to finish", cluster.Describe);
            }
        }

        /// <summary>Records a value a member or a client holds that no client wrote (a poisoned frame's <c>0xDB</c> bytes decode to U+FFFD).</summary>
        public void CheckValue(string where, string key, string value)
        {
            if (!Keys.Contains(key) || !_written.ContainsKey(value))
            {
                Foreign.Enqueue($"{where}: {key}='{value[..Math.Min(40, value.Length)]}' ({value.Length} chars{(value.Contains('\uFFFD', StringComparison.Ordinal) ? ", invalid UTF-8: poisoned 0xDB bytes?" : string.Empty)})");
            }
        }

        /// <summary>
        /// One client: one operation at a time, 5–30 ms apart, each on a member picked at random; an
        /// operation that fails with nothing done (no leader, a proposal refused) is retried on a member
        /// picked again, at most three tries in all, as etcd's client retries what it knows did not
        /// happen; one whose outcome is unknown (timed out, or the member went down under it) is recorded
        /// as such and the client moves on to its next operation.
        /// </summary>
        private async Task ClientAsync(int client, Random random, int maxOperations, CancellationToken done)
        {
            string? lastSeen = null;
            for (int i = 0; i < maxOperations && !done.IsCancellationRequested; i++)
            {
                await Task.Delay(random.Next(5, 30), CancellationToken.None);
                var request = NextRequest(random, client, lastSeen);
                for (int attempt = 0; attempt < 3; attempt++)
                {
                    var members = cluster.Running;
                    var ids = members.Keys.Order().ToArray();
                    ulong id = ids[random.Next(ids.Length)];
                    long invoked = _clock.ElapsedTicks;
                    Task<EtcdKvResponse> call = EtcdKvCalls.ExecuteAsync(members[id], request, ReadConsistency.Linearizable);
                    try
                    {
                        var response = await call.WaitAsync(ClientTimeout, CancellationToken.None);
                        long completed = _clock.ElapsedTicks;
                        foreach (var kv in response.Results.SelectMany(r => r.Kvs))
                        {
                            CheckValue($"client {client} from member {id} for {Describe(request)}", kv.Key, kv.Value);
                            lastSeen = kv.Value;
                        }

                        Record(Operation.Completed(client, invoked, completed, request, response));
                        break;
                    }
                    catch (Exception e) when (IsDefiniteFailure(e))
                    {
                        // The API says nothing was appended: the operation never happened.
                        Interlocked.Increment(ref _definiteFailures);
                        await Task.Delay(BackOff(random), CancellationToken.None);
                    }
                    catch (Exception e) when (e is TimeoutException or NodeStoppedException or ObjectDisposedException or ProposalDroppedException or OperationCanceledException)
                    {
                        // Unknown outcome: the operation may still take effect later. The client moves on
                        // (its next operation is a new one: repeating a write of unknown outcome is a new write).
                        _ = call.ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
                        Record(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(client, invoked, request));
                        await Task.Delay(BackOff(random), CancellationToken.None);
                        break;
                    }
                }
            }
        }

        private static string Describe(EtcdKvRequest request)
        {
            string text = request.ToString();
            return text.Length <= 80 ? text : text[..80] + "...";
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

        private EtcdKvRequest NextRequest(Random random, int client, string? lastSeen)
        {
            string key = Keys[random.Next(Keys.Length)];
            int roll = random.Next(100);
            return roll switch
            {
                < 30 => EtcdKvRequest.Put(key, NewValue(random, client)),
                < 55 => EtcdKvRequest.Get(key),
                < 63 => EtcdKvRequest.Delete(key),
                < 72 => EtcdKvRequest.Range("k0", "k9"),

                // Compare-and-swap on what this client last saw (often stale: then it fails and reads).
                < 88 => EtcdKvRequest.CompareValueAndPut(key, lastSeen ?? "none", NewValue(random, client)),

                // A move: if the key holds what this client last saw, write it to the next key and delete it.
                _ => Move(key, Keys[(Array.IndexOf(Keys, key) + 1) % Keys.Length], lastSeen ?? "none"),
            };
        }

        private static EtcdKvRequest Move(string from, string to, string expected) => new(
            [new EtcdCompare(from, EtcdCompareTarget.Value, EtcdCompareResult.Equal, expected)],
            [EtcdKvOperation.Put(to, expected), EtcdKvOperation.Delete(from)],
            [EtcdKvOperation.Get(from), EtcdKvOperation.Get(to)]);

        /// <summary>
        /// A new value: mostly 100 B to 3 KiB, one in three 12 to 40 KiB, so that appends (one entry, or
        /// a catch-up batch) often reach the 16 KiB from which a follower's frame copy is pooled.
        /// </summary>
        private string NewValue(Random random, int client)
        {
            int n = Interlocked.Increment(ref _valueCounter);
            int length = random.Next(3) == 0 ? random.Next(12 * 1024, 40 * 1024) : random.Next(100, 3000);
            string value = $"c{client}-{n}-" + new string((char)('a' + (n % 26)), length);
            _written[value] = true;
            return value;
        }

        /// <summary>
        /// <see cref="Faults"/> faults, 100–300 ms apart, every kind once first in a seeded order; at
        /// most one member is down or cut off at a time, so a quorum stays (the leader may change).
        /// </summary>
        private async Task NemesisAsync(Random random)
        {
            var kinds = Enum.GetValues<Fault>().OrderBy(_ => random.Next()).ToList();
            while (kinds.Count < Faults)
            {
                kinds.Add((Fault)random.Next(Enum.GetValues<Fault>().Length));
            }

            foreach (var kind in kinds)
            {
                await Task.Delay(random.Next(100, 300), CancellationToken.None);
                var running = cluster.Running;
                ulong leader = running.Values.Select(m => m.Status.LeaderId).FirstOrDefault(l => l != 0 && running.ContainsKey(l));
                ulong victim = (ulong)random.Next(1, 4);
                ulong follower = leader == 0 ? victim : running.Keys.Where(id => id != leader).Order().ElementAt(random.Next(2));
                switch (kind)
                {
                    case Fault.CutConnections:
                        bool all = random.Next(2) == 0;
                        Log(all ? "cut every connection" : $"cut {victim}'s inbound connections");
                        foreach (var proxy in cluster.Proxies.Where(p => all || p.Key == victim))
                        {
                            proxy.Value.CutAll();
                        }

                        break;
                    case Fault.DelayInbound:
                        var delay = TimeSpan.FromMilliseconds(random.Next(2, 25));
                        Log($"delay {victim}'s inbound by {delay.TotalMilliseconds} ms");
                        cluster.Proxies[victim].Delay = delay;
                        await Task.Delay(random.Next(200, 800), CancellationToken.None);
                        cluster.Proxies[victim].Delay = TimeSpan.Zero;
                        break;
                    case Fault.BlackHoleInbound:
                        // Preferably the leader: it keeps appending proposals it cannot commit, which the next leader's log overwrites.
                        ulong isolated = leader != 0 && random.Next(3) > 0 ? leader : victim;
                        Log($"black-hole {isolated}'s inbound");
                        cluster.Proxies[isolated].BlackHole(true);
                        await Task.Delay(random.Next(300, 900), CancellationToken.None);
                        cluster.Proxies[isolated].BlackHole(false);
                        break;
                    case Fault.CrashMember:
                        ulong crashed = leader != 0 && random.Next(2) == 0 ? leader : victim;
                        Log($"crash {crashed}");
                        await cluster.StopMemberAsync(crashed, crash: true);
                        await Task.Delay(random.Next(50, 300), CancellationToken.None);
                        await cluster.StartMemberAsync(crashed);
                        break;
                    case Fault.StopLeader:
                        ulong stopped = leader != 0 ? leader : victim;
                        Log($"stop leader {stopped}");
                        await cluster.StopMemberAsync(stopped, crash: false);
                        await Task.Delay(random.Next(200, 600), CancellationToken.None);
                        await cluster.StartMemberAsync(stopped);
                        break;
                    case Fault.LagFollowerToSnapshot:
                        await LagToSnapshotAsync(random, follower);
                        break;
                    case Fault.TransferLeadership:
                        if (leader != 0 && running.TryGetValue(leader, out var current))
                        {
                            Log($"transfer {leader}->{follower}");
                            try
                            {
                                await current.TransferLeadershipAsync(follower, CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None);
                            }
                            catch (Exception e) when (e is TimeoutException or NoLeaderException or InvalidOperationException or NodeStoppedException or ProposalDroppedException)
                            {
                                // A transfer may be refused or overtaken; the faults go on.
                            }
                        }

                        break;
                    default:
                        throw new InvalidOperationException($"The nemesis has no step for fault {kind}.");
                }
            }
        }

        /// <summary>
        /// Stops <paramref name="follower"/> until every running member's snapshot is past what it
        /// applied plus the retained entries (so it can only catch up from a snapshot), sometimes
        /// arming its proxy to cut that snapshot's stream partway; then restarts it.
        /// </summary>
        private async Task LagToSnapshotAsync(Random random, ulong follower)
        {
            ulong applied = cluster.Running[follower].Node.Status.AppliedIndex;
            long cutAfter = random.Next(2) == 0 ? random.Next(500, 20_000) : -1;
            Log($"lag {follower} from index {applied}{(cutAfter >= 0 ? $", its snapshot cut after {cutAfter} B" : string.Empty)}");
            await cluster.StopMemberAsync(follower, crash: false);
            ulong needed = applied + TcpReplicatedCluster.RetainedEntries + 2;

            // Each running member's own signal that its snapshot reached the index (no public event
            // exists; the node's internal one, through NodeDiagnostics). Bounded: when the clients'
            // writes stop first, no snapshot comes.
            var snapshotted = Task.WhenAll(cluster.Running.Values.Select(m => NodeDiagnostics.WaitForSnapshotAsync(m.Node, needed)));
            await Task.WhenAny(snapshotted, Task.Delay(SnapshotWaitLimit, CancellationToken.None));
            if (!snapshotted.IsCompletedSuccessfully)
            {
                // The clients' writes stopped (their operations used up) before a snapshot past the
                // follower was due: it restarts and catches up from the log; the test's snapshot
                // assertion then names this line in the nemesis log.
                Log($"lag {follower}: no snapshot past index {needed} within {SnapshotWaitLimit.TotalSeconds:0} s, restarted anyway");
            }

            if (cutAfter >= 0)
            {
                cluster.Proxies[follower].CutNextSnapshotAfterBytes(cutAfter);
            }

            await cluster.StartMemberAsync(follower);
        }

        private void Log(string fault) => NemesisLog.Add($"{_clock.Elapsed.TotalSeconds:0.0}s {fault}");
    }
}
