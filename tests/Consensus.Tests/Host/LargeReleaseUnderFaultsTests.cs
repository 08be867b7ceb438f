using System.Collections.Concurrent;
using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The release of a large batch's callers (at least 128 on the thread pool are drained by one work
/// item per 64 callers, up to one per core: <see cref="ProposalRelease{TResult}"/>) in a real-time
/// cluster under faults. The deterministic soaks never reach it: their nodes run on a deterministic
/// scheduler (always one work item) with a few callers. Here three <see cref="RaftNode{TResult}"/>s
/// over an <see cref="InProcessNetwork"/> tick on real time and release on the thread pool, and
/// rounds of 512 concurrent calls go to one member at a time (the leader or a follower) while a
/// seeded nemesis stops and restarts the leader, partitions a follower and heals it, drops
/// messages on every link, and duplicates, delays and reorders them on every link (a forwarded
/// proposal or its answer delivered twice, an acknowledgement arriving after a later one). What
/// must hold, through the public API only:
/// <list type="bullet">
/// <item>every caller's task completes within a bound (acknowledged, or failed with an exception
/// ProposeAsync documents): a caller left out of a release would wait forever;</item>
/// <item>an acknowledged result is the caller's own: the command's position in the applied log
/// (the state machine answers each command with how many commands were applied up to it);</item>
/// <item>every member applies the same commands in the same order, each at most once, every
/// acknowledged one among them, and none whose failure says it was never appended or will not be
/// applied;</item>
/// <item>no continuation holds up the node's loop: in every round up to three callers' continuations,
/// run synchronously where the call is answered, propose again through the same node and block
/// until that call completes (acknowledged or failed). Run on the node's loop, that call could
/// never be proposed nor time out, and the wait would run out. (A continuation run on the applier
/// is not caught this way: the loop still fails the blocked call when its proposal timeout passes.)</item>
/// </list>
/// The nodes' disk is the in-memory fault-injecting one (<see cref="HostCluster"/>): the release is
/// what is under test, not the disk, and an in-memory WAL lets a round finish in a fraction of a
/// second on the shared 2-core machine, so the default seed's run stays well under 20 s; the
/// disk's seeded content also keeps a restarted leader's recovery the same for a seed. Timing is
/// never asserted: the bounds only turn a hang into a failure. Seeds:
/// <c>LARGE_RELEASE_SEED=N</c> replays one, <c>LARGE_RELEASE_SOAK_SEEDS=N</c> runs N (from
/// <c>LARGE_RELEASE_FIRST_SEED</c>, default 2701).
/// </summary>
[TestFixture]
public sealed class LargeReleaseUnderFaultsTests
{
    private const int Callers = 512;
    private const int Rounds = 12;

    /// <summary>Callers per round whose continuation blocks on a further call (more than one: a blocked continuation can stall the rest of its release, which the loop then helps along).</summary>
    private const int ProbesPerRound = 3;
    private static readonly ulong[] Voters = [1, 2, 3];

    /// <summary>How long any one call may take: far beyond the 1 s proposal timeout and an election, even on a loaded machine.</summary>
    private static readonly TimeSpan CallBound = TimeSpan.FromSeconds(30);

    private static IReadOnlyList<int> Seeds() => TestSeeds.Choose("LARGE_RELEASE_SEED", "LARGE_RELEASE_SOAK_SEEDS", 2701, 1);

    [TestCaseSource(nameof(Seeds))]
    public async Task HundredsOfConcurrentCallersAreEachAnsweredOnceAndInOrderThroughLeaderStopsPartitionsDropsDuplicatesAndReordering(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with LARGE_RELEASE_SEED={seed})");
        var random = new Random(seed);
        var run = new Run(seed);
        await using var cluster = run.Cluster;
        foreach (var id in Voters)
        {
            await run.StartAsync(id);
        }

        await cluster.WaitForLeaderAsync();

        // The nemesis: each fault starts a little after one round starts and is undone a little
        // after a later round starts, so it lands in the middle of rounds of calls.
        var plan = new List<Fault>
        {
            Fault.StopLeader, Fault.StopLeader, Fault.PartitionFollower, Fault.PartitionFollower,
            Fault.DropMessages, Fault.DropMessages, Fault.DuplicateAndReorderMessages, Fault.DuplicateAndReorderMessages,
        };
        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(plan));
        var faultRounds = new Dictionary<int, Fault>();
        for (int i = 0; i < plan.Count; i++)
        {
            faultRounds[1 + (i * (Rounds - 2) / plan.Count)] = plan[i];
        }

        TestContext.Out.WriteLine($"faults by round: {string.Join(", ", faultRounds.Select(f => $"{f.Key}: {f.Value}"))}");

        Func<Task>? undo = null;
        for (int round = 0; round < Rounds; round++)
        {
            var target = run.ChooseTarget(random);
            var faultDelay = TimeSpan.FromMilliseconds(random.Next(0, 40));
            var probes = Enumerable.Range(0, ProbesPerRound).Select(_ => random.Next(Callers)).ToHashSet();
            var calls = run.ProposeRound(round, target, probes);

            // Faults race the round's calls: an undo first (a stopped node restarted, the network healed), then the next fault.
            await Task.Delay(faultDelay);
            if (undo is not null)
            {
                await undo();
                undo = null;
            }

            if (faultRounds.TryGetValue(round, out var fault))
            {
                undo = await run.InjectAsync(fault, random);
            }

            await run.AwaitRoundAsync(round, calls);
        }

        if (undo is not null)
        {
            await undo();
        }

        await run.CheckAsync();
    }

    private enum Fault
    {
        StopLeader,
        PartitionFollower,
        DropMessages,
        DuplicateAndReorderMessages,
    }

    /// <summary>One seeded run: the cluster, its members' machines, and every call made with its outcome.</summary>
    private sealed class Run(int seed)
    {
        private readonly Lock _lock = new();
        private readonly ConcurrentBag<Call> _calls = [];
        private readonly ConcurrentBag<string> _heldUp = [];
        private readonly Dictionary<ulong, int> _largestOwnApply = [];
        private int _round;

        public HostCluster Cluster { get; } = new(seed);

        /// <summary>Starts (or restarts, with a new in-memory state machine that the node refills from its snapshot and log) member <paramref name="id"/>.</summary>
        public async Task StartAsync(ulong id)
        {
            var machine = new RecordingStateMachine();
            machine.BeforeApply = batch =>
            {
                // The premise: an apply carrying at least 128 of the current round's calls made on
                // this member (one release of 128 or more, unless the applier merged committed
                // batches). Only the current round's: a restarted member replays earlier rounds'
                // commands in large applies that release nobody.
                string own = $"r{Volatile.Read(ref _round)}-n{id}-c";
                int count = 0;
                foreach (var c in batch.Commands)
                {
                    if (Encoding.UTF8.GetString(c.Data.Span).StartsWith(own, StringComparison.Ordinal))
                    {
                        count++;
                    }
                }

                lock (_lock)
                {
                    _largestOwnApply[id] = Math.Max(_largestOwnApply.GetValueOrDefault(id), count);
                }

                return Task.CompletedTask;
            };
            var node = await RaftNode<long>.StartAsync(Cluster.Options(id, Voters), machine, Cluster.Network.CreateTransport(id));
            lock (_lock)
            {
                Cluster.Nodes[id] = node;
                Cluster.Machines[id] = machine;
            }
        }

        /// <summary>The leader among the running members three times in five, otherwise any running member (a follower forwards).</summary>
        public (ulong Id, RaftNode<long> Node) ChooseTarget(Random random)
        {
            lock (_lock)
            {
                var running = Cluster.Nodes.OrderBy(n => n.Key).ToList();
                var leader = running.Where(n => n.Value.Status.Raft.SoftState.Role == StateRole.Leader).ToList();
                var pick = leader.Count > 0 && random.Next(5) < 3 ? leader[0] : running[random.Next(running.Count)];
                return (pick.Key, pick.Value);
            }
        }

        /// <summary>Issues the round's calls back to back, so the node's loop finds hundreds queued at its next turn.</summary>
        public List<Call> ProposeRound(int round, (ulong Id, RaftNode<long> Node) target, HashSet<int> probes)
        {
            Volatile.Write(ref _round, round);
            var calls = new List<Call>(Callers);
            for (int i = 0; i < Callers; i++)
            {
                var call = Propose(target.Node, target.Id, $"r{round}-n{target.Id}-c{i}");
                if (probes.Contains(i))
                {
                    int probe = i;
                    call = call with { Continuation = call.Answer.ContinueWith(_ => Probe(target.Node, target.Id, round, probe), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default) };
                }

                calls.Add(call);
                _calls.Add(call);
            }

            return calls;
        }

        public async Task<Func<Task>> InjectAsync(Fault fault, Random random)
        {
            switch (fault)
            {
                case Fault.StopLeader:
                {
                    RaftNode<long>? leader;
                    ulong id;
                    lock (_lock)
                    {
                        (id, leader) = Cluster.Nodes.FirstOrDefault(n => n.Value.Status.Raft.SoftState.Role == StateRole.Leader);
                        if (leader is not null)
                        {
                            Cluster.Nodes.Remove(id);
                        }
                    }

                    if (leader is null)
                    {
                        TestContext.Out.WriteLine("stop leader: no leader at the moment, nothing stopped");
                        return () => Task.CompletedTask;
                    }

                    TestContext.Out.WriteLine($"stop leader {id}");
                    await leader.DisposeAsync();
                    return async () =>
                    {
                        TestContext.Out.WriteLine($"restart {id}");
                        await StartAsync(id);
                    };
                }

                case Fault.PartitionFollower:
                {
                    ulong follower;
                    lock (_lock)
                    {
                        var followers = Cluster.Nodes.Where(n => n.Value.Status.Raft.SoftState.Role != StateRole.Leader).Select(n => n.Key).Order().ToList();
                        follower = followers.Count > 0 ? followers[random.Next(followers.Count)] : Voters[random.Next(Voters.Length)];
                    }

                    TestContext.Out.WriteLine($"partition {follower}");
                    Cluster.Network.Isolate(follower);
                    return () =>
                    {
                        TestContext.Out.WriteLine($"heal {follower}");
                        Cluster.Network.Heal();
                        return Task.CompletedTask;
                    };
                }

                case Fault.DuplicateAndReorderMessages:
                {
                    // Every message may arrive twice, late or after messages sent after it: the
                    // delivery a real network gives a retrying transport. Nothing is lost, so the
                    // round's calls must all be answered, each once.
                    var faults = new LinkFaults
                    {
                        DuplicateRate = 0.1 + (random.NextDouble() * 0.3),
                        ReorderRate = 0.1 + (random.NextDouble() * 0.3),
                        ReorderDelay = TimeSpan.FromMilliseconds(random.Next(1, 30)),
                        DelayJitter = TimeSpan.FromMilliseconds(random.Next(0, 5)),
                    };
                    TestContext.Out.WriteLine($"duplicate {faults.DuplicateRate:0.00} and reorder {faults.ReorderRate:0.00} (held {faults.ReorderDelay.TotalMilliseconds} ms, jitter {faults.DelayJitter.TotalMilliseconds} ms) of messages on every link");
                    Cluster.Network.SetAllLinkFaults(faults);
                    return () =>
                    {
                        TestContext.Out.WriteLine($"stop duplicating and reordering ({Cluster.Network.DuplicatedMessages} duplicated so far)");
                        Cluster.Network.SetAllLinkFaults(LinkFaults.None);
                        return Task.CompletedTask;
                    };
                }

                default:
                {
                    double rate = 0.05 + (random.NextDouble() * 0.15);
                    TestContext.Out.WriteLine($"drop {rate:0.00} of messages on every link");
                    Cluster.Network.SetAllLinkFaults(new LinkFaults { DropRate = rate });
                    return () =>
                    {
                        TestContext.Out.WriteLine("stop dropping");
                        Cluster.Network.SetAllLinkFaults(LinkFaults.None);
                        return Task.CompletedTask;
                    };
                }
            }
        }

        /// <summary>Waits for every call of the round (and its probe) within the bound; a call never answered fails the test.</summary>
        public async Task AwaitRoundAsync(int round, List<Call> calls)
        {
            var all = Task.WhenAll(calls.Select(c => c.Continuation ?? c.Answer).Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
            if (await Task.WhenAny(all, Task.Delay(CallBound + CallBound)) != all)
            {
                var waiting = calls.Where(c => !(c.Continuation ?? c.Answer).IsCompleted).ToList();
                Assert.Fail($"seed {seed}, round {round}: {waiting.Count} of {calls.Count} callers never answered within {(CallBound + CallBound).TotalSeconds:0} s (a lost wake-up), e.g. {string.Join(", ", waiting.Take(5).Select(c => c.Command))}; continuations whose further call was never answered (run on the loop?): {string.Join(", ", _heldUp)}; {DescribeNodes()}");
            }

            int acknowledged = calls.Count(c => c.Answer.IsCompletedSuccessfully);
            TestContext.Out.WriteLine($"round {round} via {calls[0].Via}: {acknowledged} of {calls.Count} acknowledged");
        }

        public async Task CheckAsync()
        {
            Assert.That(_heldUp, Is.Empty, $"seed {seed}: a continuation run by a release blocked on a later call through its node, and that call was not answered within {CallBound.TotalSeconds:0} s: the continuation held up the node's loop or applier");

            // Settle: every member running, the network whole, and one more command applied everywhere.
            Cluster.Network.Heal();
            Cluster.Network.SetAllLinkFaults(LinkFaults.None);
            ulong barrier = await ProposeUntilAcknowledgedAsync();
            await Cluster.WaitForAllAppliedAsync(barrier);

            var logs = Voters.ToDictionary(id => id, id => Cluster.Machines[id].AppliedCommands.Where(a => a.Index <= barrier).ToList());
            foreach (var id in Voters)
            {
                Assert.That(logs[id], Is.EqualTo(logs[Voters[0]]), $"seed {seed}: member {id}'s applied commands against member {Voters[0]}'s (same commands, same order, same indexes)");
                var repeated = logs[id].GroupBy(a => a.Command).Where(g => g.Count() > 1).Select(g => g.Key).Take(5).ToList();
                Assert.That(repeated, Is.Empty, $"seed {seed}: commands member {id} applied more than once");
            }

            var log = logs[Voters[0]];
            var position = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < log.Count; i++)
            {
                position[log[i].Command] = i + 1;
            }

            int acknowledged = 0;
            var failures = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var call in _calls)
            {
                var task = call.Answer;
                Assert.That(task.IsCompleted, Is.True, $"seed {seed}: {call.Command} is still waiting after its round");
                if (task.IsCompletedSuccessfully)
                {
                    acknowledged++;
                    Assert.That(position.TryGetValue(call.Command, out int at), Is.True, $"seed {seed}: {call.Command} was acknowledged (result {task.Result}) via {call.Via} but no member applied it");
                    Assert.That(task.Result, Is.EqualTo(at), $"seed {seed}: {call.Command}'s result via {call.Via} is not its own: it is applied as command {at} of the log");
                    continue;
                }

                Assert.That(task.IsFaulted, Is.True, $"seed {seed}: {call.Command} was cancelled, but no call had a token");
                var error = task.Exception!.InnerException!;
                string kind = error switch
                {
                    NoLeaderException => "no leader",
                    ProposalDroppedException dropped => $"dropped: {dropped.Reason}",
                    NodeStoppedException => "node stopped",
                    _ => throw new AssertionException($"seed {seed}: {call.Command} via {call.Via} failed with an exception ProposeAsync does not document: {error}"),
                };
                failures[kind] = failures.GetValueOrDefault(kind) + 1;

                // Only a timed-out call or one whose node stopped may still have been applied (at most once, checked above).
                bool neverApplied = error is NoLeaderException || (error is ProposalDroppedException d && d.Reason != ProposalDropReason.TimedOut);
                if (neverApplied)
                {
                    Assert.That(Cluster.Machines.Values.Any(m => m.Commands.Contains(call.Command)), Is.False, $"seed {seed}: {call.Command} via {call.Via} failed ({kind}: nothing appended, or overwritten) yet was applied");
                }
            }

            lock (_lock)
            {
                TestContext.Out.WriteLine($"{_calls.Count} calls: {acknowledged} acknowledged, {string.Join(", ", failures.Select(f => $"{f.Value} {f.Key}"))}; largest apply of a member's own calls: {string.Join(", ", _largestOwnApply.OrderBy(a => a.Key).Select(a => $"member {a.Key} {a.Value}"))}");
                Assert.That(_largestOwnApply.Values.Max(), Is.GreaterThanOrEqualTo(2 * ProposalRelease<long>.CallersPerExtraWorkItem), $"seed {seed}: the premise — some member applied at least 128 of its own callers' commands at once, the size a release is split at");
            }

            Assert.That(acknowledged, Is.GreaterThan(Callers), $"seed {seed}: the premise — most rounds were answered");
        }

        private static Call Propose(RaftNode<long> node, ulong via, string command)
        {
            Task<long> task;
            try
            {
                task = node.ProposeAsync(Encoding.UTF8.GetBytes(command)).AsTask();
            }
            catch (Exception e)
            {
                // A call on a node being stopped may fail at once: the same outcome, checked the same way.
                task = Task.FromException<long>(e);
            }

            return new Call(command, via, task, null);
        }

        /// <summary>
        /// Run synchronously by the release that completed a caller: a call through the same node,
        /// waited for on this thread. It needs the node's loop to propose it and its applier and a
        /// release to answer it, so it completes only if this thread is none of them.
        /// </summary>
        private void Probe(RaftNode<long> node, ulong via, int round, int after)
        {
            var call = Propose(node, via, $"r{round}-n{via}-probe{after}");
            _calls.Add(call);
            if (!((IAsyncResult)call.Answer).AsyncWaitHandle.WaitOne(CallBound))
            {
                _heldUp.Add(call.Command);
            }
        }

        private string DescribeNodes()
        {
            lock (_lock)
            {
                return string.Join("; ", Cluster.Nodes.OrderBy(n => n.Key).Select(n => n.Value.DescribeWaits()));
            }
        }

        private async Task<ulong> ProposeUntilAcknowledgedAsync()
        {
            var deadline = DateTime.UtcNow + Waits.Limit;
            for (int attempt = 0; DateTime.UtcNow < deadline; attempt++)
            {
                var (id, node) = ChooseTarget(new Random(attempt));
                try
                {
                    await node.ProposeAsync(Encoding.UTF8.GetBytes($"barrier-{attempt}")).AsTask().WaitAsync(CallBound);
                    return node.Status.AppliedIndex;
                }
                catch (Exception e) when (e is NoLeaderException or ProposalDroppedException)
                {
                    TestContext.Out.WriteLine($"barrier via {id}: {e.GetType().Name}, again once a member leads");
                    await Waits.UntilAsync(
                        () => Cluster.Nodes.Values.Any(n => n.Status.Raft.SoftState.Role == StateRole.Leader),
                        $"seed {seed}: a leader after healing ({DescribeNodes()})");
                }
            }

            Assert.Fail($"seed {seed}: no command acknowledged within {Waits.Limit.TotalSeconds:0} s after healing; {DescribeNodes()}");
            return 0;
        }
    }

    /// <summary>One call: its command (unique in the run), the member it was made on, its task, and the probe its continuation ran if it had one.</summary>
    private sealed record Call(string Command, ulong Via, Task<long> Answer, Task? Continuation);
}
