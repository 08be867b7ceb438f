using System.Globalization;
using EmbeddedRaft;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// The fault injector: a task on the simulation's scheduler that, every so often (drawn from its
/// own seeded random), injects one fault and usually undoes it after a while: partitions (one
/// member isolated, a minority or majority split with the leader on either side, a one-way cut,
/// a bridge where one member alone sees both halves), lossy/duplicating/reordering/slow links,
/// crash and restart with unsynced writes lost or torn, a disk that fails every write (the member
/// must stop; it is restarted on a healed disk), leadership transfers, and membership changes
/// (add a learner, promote it, remove a voter — under whatever other fault is active).
/// </summary>
/// <remarks>
/// Slow disks: the fault-injecting file system completes every call at once (its interface is
/// synchronous), so a slow fsync is a delay of simulated time the write-ahead log awaits before its
/// flush (the internal WalOptions.BeforeSync seam, unset in production). Members tick at different
/// rates (each member's tick interval is drawn from the seed when it is created).
/// </remarks>
internal sealed class Nemesis(StoreSimulation sim, Random random)
{
    private readonly List<ulong> _pendingRemovals = [];

    public List<string> Log { get; } = [];

    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var mean = sim.Options.NemesisInterval;
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next((int)(mean.TotalMilliseconds / 2), (int)(mean.TotalMilliseconds * 3 / 2))), sim.Time, CancellationToken.None);
            if (stop.IsCancellationRequested)
            {
                return;
            }

            await ActOnceAsync();
        }
    }

    /// <summary>Undoes every fault: network healed, disks healthy, every member that is down restarted.</summary>
    public async Task HealAsync()
    {
        Note("heal");
        sim.Network.Heal();
        foreach (var member in sim.Members.Values)
        {
            member.SlowSync = null;
        }

        sim.Network.SetAllLinkFaults(sim.BaseLinkFaults);
        foreach (var member in sim.Members.Values.Where(m => m.State == MemberState.Running && m.DiskFailing).ToList())
        {
            await sim.CrashMemberAsync(member, "failing disk at heal");
        }

        foreach (var member in sim.Members.Values.Where(m => m.State == MemberState.Down).ToList())
        {
            await RestartAsync(member);
        }

        await CompleteRemovalsAsync(attempts: 20);
    }

    private async Task ActOnceAsync()
    {
        var faults = sim.Options.Faults;
        var choices = new List<Func<Task>>();
        if (faults.HasFlag(NemesisFaults.Partitions))
        {
            choices.Add(PartitionAsync);
            choices.Add(PartitionAsync);
        }

        if (faults.HasFlag(NemesisFaults.LinkFaults))
        {
            choices.Add(LinkFaultsAsync);
        }

        if (faults.HasFlag(NemesisFaults.Crashes))
        {
            choices.Add(CrashAsync);
            choices.Add(CrashAsync);
            choices.Add(CrashQuorumAtFsyncAsync);
        }

        if (faults.HasFlag(NemesisFaults.DiskErrors))
        {
            choices.Add(DiskErrorAsync);
        }

        if (faults.HasFlag(NemesisFaults.SlowDisks))
        {
            choices.Add(SlowDiskAsync);
        }

        if (faults.HasFlag(NemesisFaults.LeaderTransfers))
        {
            choices.Add(TransferAsync);
        }

        if (faults.HasFlag(NemesisFaults.MembershipChanges))
        {
            choices.Add(MembershipAsync);
        }

        if (choices.Count > 0)
        {
            await choices[random.Next(choices.Count)]();
        }
    }

    private TimeSpan Hold() => TimeSpan.FromMilliseconds(random.Next(100, 1500));

    private async Task PartitionAsync()
    {
        var ids = sim.Members.Values.Where(m => m.State is MemberState.Running or MemberState.Down).Select(m => m.Id).ToList();
        if (ids.Count < 2)
        {
            return;
        }

        Shuffle(ids);
        ulong leader = sim.Running.Select(m => m.TryStatus()?.LeaderId ?? 0).FirstOrDefault(l => l != 0);
        switch (random.Next(5))
        {
            case 0:
                Note($"isolate m{ids[0]}");
                sim.Network.Isolate(ids[0]);
                break;
            case 1:
                if (leader != 0)
                {
                    Note($"isolate leader m{leader}");
                    sim.Network.Isolate(leader);
                }

                break;
            case 2:
                // Minority and majority: the leader lands on either side.
                int minority = (ids.Count - 1) / 2;
                var small = ids.Take(Math.Max(1, minority)).ToArray();
                Note($"split [{string.Join(",", small)}] from the rest");
                sim.Network.Partition(small, ids.Skip(small.Length).ToArray());
                break;
            case 3:
                // One-way cuts: a member that hears but is not heard, or the reverse.
                ulong victim = ids[0];
                bool inbound = random.Next(2) == 0;
                Note($"one-way cut {(inbound ? "into" : "out of")} m{victim}");
                foreach (ulong other in ids.Skip(1))
                {
                    if (inbound)
                    {
                        sim.Network.Cut(other, victim);
                    }
                    else
                    {
                        sim.Network.Cut(victim, other);
                    }
                }

                break;
            default:
                // A bridge: two halves that only the bridge member sees both of.
                if (ids.Count < 3)
                {
                    return;
                }

                ulong bridge = ids[0];
                var rest = ids.Skip(1).ToList();
                var left = rest.Take(rest.Count / 2).ToList();
                var right = rest.Skip(rest.Count / 2).ToList();
                Note($"bridge m{bridge} between [{string.Join(",", left)}] and [{string.Join(",", right)}]");
                foreach (ulong a in left)
                {
                    foreach (ulong b in right)
                    {
                        sim.Network.Cut(a, b);
                        sim.Network.Cut(b, a);
                    }
                }

                break;
        }

        await Task.Delay(Hold(), sim.Time, CancellationToken.None);
        Note("network healed");
        sim.Network.Heal();
    }

    private async Task LinkFaultsAsync()
    {
        var faults = new LinkFaults
        {
            DropRate = random.Next(3) == 0 ? 0.2 : 0.05,
            DuplicateRate = random.NextDouble() * 0.2,
            ReorderRate = random.NextDouble() * 0.3,
            Delay = TimeSpan.FromMilliseconds(random.Next(0, 30)),
            DelayJitter = TimeSpan.FromMilliseconds(random.Next(0, 30)),
        };
        Note(string.Create(CultureInfo.InvariantCulture, $"lossy links drop {faults.DropRate:0.00} dup {faults.DuplicateRate:0.00} reorder {faults.ReorderRate:0.00} delay {faults.Delay.TotalMilliseconds}+{faults.DelayJitter.TotalMilliseconds} ms"));
        sim.Network.SetAllLinkFaults(faults);
        await Task.Delay(Hold(), sim.Time, CancellationToken.None);
        Note("links clean");
        sim.Network.SetAllLinkFaults(sim.BaseLinkFaults);
    }

    private async Task CrashAsync()
    {
        // Sometimes the leader, sometimes anyone; now and then a second member soon after.
        if (ChooseVictim(leaderATimeInThree: true) is not { } victim)
        {
            return;
        }

        if (random.Next(2) == 0)
        {
            // Mid-write: the disk dies after one of the member's next operations (between a write and
            // its fsync, within a B+tree commit, ...), wherever the scheduler then is.
            long crashAt = victim.Disk.OperationCount + random.Next(1, 40);
            Note($"crash {victim} at its disk operation {crashAt}");
            victim.DiskFailing = true;
            victim.Disk.CrashAfterOperation = crashAt;
            var deadline = sim.Now + TimeSpan.FromSeconds(1);
            while (sim.Now < deadline && victim.State == MemberState.Running && !victim.Disk.IsCrashed)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5), sim.Time, CancellationToken.None);
            }
        }
        else
        {
            Note($"crash {victim}");
        }

        if (victim.State != MemberState.Running)
        {
            return;
        }

        await sim.CrashMemberAsync(victim, "nemesis");
        if (random.Next(4) == 0 && sim.Running.ToList() is { Count: > 0 } others)
        {
            var second = others[random.Next(others.Count)];
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(0, 100)), sim.Time, CancellationToken.None);
            if (second.State == MemberState.Running)
            {
                Note($"crash {second} too");
                await sim.CrashMemberAsync(second, "nemesis");
            }
        }

        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(20, 800)), sim.Time, CancellationToken.None);
        foreach (var down in sim.Members.Values.Where(m => m.State == MemberState.Down).ToList())
        {
            await RestartAsync(down);
        }
    }

    /// <summary>
    /// A quorum loses what it had not synced, right after it may have acknowledged it: the voters
    /// outside one quorum are cut off from the leader, the followers completing the leader's quorum
    /// crash as their next fsync starts (what they wrote and did not sync is dropped whole), the
    /// leader crashes a moment later (after it may have answered clients) and stays down while the
    /// others elect a leader among themselves and write on. Acknowledging appends only after the
    /// fsync, the leader cannot have committed what the crashed followers lost; a follower that
    /// acknowledged before its fsync let the leader commit and answer a write no surviving log
    /// holds: the new leader overwrites it (a lost acknowledged write, a replaced committed entry).
    /// </summary>
    private async Task CrashQuorumAtFsyncAsync()
    {
        var running = sim.Running.ToList();
        var leader = running.FirstOrDefault(m => m.TryStatus()?.LeaderId == m.Id);
        if (leader is null || sim.Members.Values.Any(m => m.State == MemberState.Down))
        {
            return;
        }

        var followers = running.Where(m => m != leader && m.TryStatus() is { IsLearner: false }).OrderBy(_ => random.Next()).ToList();
        int quorum = ((followers.Count + 1) / 2) + 1;
        if (followers.Count < quorum)
        {
            return;
        }

        var acking = followers.Take(quorum - 1).ToList();
        var outside = followers.Skip(quorum - 1).Select(m => m.Id).ToArray();
        Note($"crash quorum at fsync: leader {leader}, {string.Join(",", acking)} crash at their next fsync, [{string.Join(",", outside)}] cut off");
        sim.Network.Partition(outside, [leader.Id, .. acking.Select(m => m.Id)]);
        foreach (var member in acking)
        {
            member.DiskFailing = true;
            member.Disk.CrashAtNextFlush = true;
        }

        var deadline = sim.Now + TimeSpan.FromSeconds(1);
        while (sim.Now < deadline && acking.Any(m => m.State == MemberState.Running && !m.Disk.IsCrashed))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(5), sim.Time, CancellationToken.None);
        }

        // The leader may commit and answer what the crashed followers acknowledged, then it goes too.
        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(5, 40)), sim.Time, CancellationToken.None);
        if (leader.State == MemberState.Running)
        {
            await sim.CrashMemberAsync(leader, "nemesis, after its quorum crashed");
        }

        foreach (var member in acking.Where(m => m.State == MemberState.Running))
        {
            await sim.CrashMemberAsync(member, "nemesis, at its fsync", dropUnflushed: true);
        }

        sim.Network.Heal();
        foreach (var member in acking)
        {
            await RestartAsync(member);
        }

        // The others elect a leader without the old one and write on before it returns.
        await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 1500)), sim.Time, CancellationToken.None);
        if (leader.State == MemberState.Down)
        {
            await RestartAsync(leader);
        }
    }

    /// <summary>
    /// A slow disk: one member's (now and then the leader's) write-ahead-log fsyncs take 20 to 200 ms
    /// of simulated time for a while, so its acknowledgements, votes and applies lag while the rest
    /// of the cluster runs on (a leader's own slow fsync delays its commits: the others' acks alone
    /// make a quorum only with five members).
    /// </summary>
    private async Task SlowDiskAsync()
    {
        if (ChooseVictim(leaderATimeInThree: true) is not { } victim)
        {
            return;
        }

        int max = random.Next(2) == 0 ? 60 : 200;
        Note($"slow disk on {victim}: fsyncs take 20..{max} ms");
        victim.SlowSync = (20, max);
        await Task.Delay(Hold(), sim.Time, CancellationToken.None);
        Note($"disk of {victim} fast again");
        victim.SlowSync = null;
    }

    private async Task DiskErrorAsync()
    {
        if (ChooseVictim(leaderATimeInThree: false) is not { } victim)
        {
            return;
        }

        Note($"disk of {victim} fails every write");
        victim.DiskFailing = true;
        victim.Disk.FailWhen = op => op.Kind is FaultOperationKind.Write or FaultOperationKind.Flush;

        // Fail-stop: it must stop on its own; then it is restarted on a healed disk (what it had
        // not synced is gone, as after a process exit).
        var deadline = sim.Now + TimeSpan.FromSeconds(2);
        while (sim.Now < deadline && victim.State == MemberState.Running && victim.TryStatus()?.StoppedCause is null)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(20), sim.Time, CancellationToken.None);
        }

        if (victim.State == MemberState.Running)
        {
            Note($"{victim} {(victim.TryStatus()?.StoppedCause is null ? "did not write (still up)" : "stopped")}: restart on a healed disk");
            await sim.CrashMemberAsync(victim, "disk error");
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(20, 300)), sim.Time, CancellationToken.None);
            await RestartAsync(victim);
        }
    }

    /// <summary>
    /// A running member chosen at random — with <paramref name="leaderATimeInThree"/>, replaced by the
    /// leader one time in three when there is one — or null when none runs. The draws from the
    /// nemesis' random are the same, in the same order, as the fault actions always made them, so
    /// a seed replays the run it always did.
    /// </summary>
    private SimulatedMember? ChooseVictim(bool leaderATimeInThree)
    {
        var running = sim.Running.ToList();
        if (running.Count == 0)
        {
            return null;
        }

        var victim = running[random.Next(running.Count)];
        if (leaderATimeInThree && random.Next(3) == 0 && running.FirstOrDefault(m => m.TryStatus()?.LeaderId == m.Id) is { } leader)
        {
            victim = leader;
        }

        return victim;
    }

    private async Task TransferAsync()
    {
        var running = sim.Running.ToList();
        var leader = running.FirstOrDefault(m => m.TryStatus()?.LeaderId == m.Id);
        var voters = running.Where(m => m != leader && m.TryStatus() is { IsLearner: false }).ToList();
        if (leader is null || voters.Count == 0)
        {
            return;
        }

        var target = voters[random.Next(voters.Count)];
        Note($"transfer leadership {leader} -> {target}");
        try
        {
            await sim.WithTimeout(leader.Store!.TransferLeadershipAsync(target.Id).AsTask(), TimeSpan.FromSeconds(1));
        }
        catch (Exception e) when (e is not InvariantViolationException)
        {
            Note($"transfer failed: {e.GetType().Name}");
        }
    }

    private async Task MembershipAsync()
    {
        var running = sim.Running.ToList();
        if (running.Count == 0)
        {
            return;
        }

        var via = running[random.Next(running.Count)].Store!;
        IReadOnlyList<Mvcc.Replication.MemberInfo> members;
        try
        {
            members = await sim.WithTimeout(via.MemberListAsync().AsTask(), TimeSpan.FromSeconds(1));
        }
        catch (Exception e) when (e is not InvariantViolationException)
        {
            return;
        }

        if (_pendingRemovals.Count > 0)
        {
            await CompleteRemovalsAsync(attempts: 1);
            return;
        }

        var learners = members.Where(m => m.IsLearner).ToList();
        var voters = members.Where(m => !m.IsLearner).ToList();
        try
        {
            if (learners.Count > 0 && random.Next(2) == 0)
            {
                var learner = learners[random.Next(learners.Count)];
                Note($"promote m{learner.Id}");
                await sim.WithTimeout(via.PromoteMemberAsync(learner.Id).AsTask(), TimeSpan.FromSeconds(1));
                Note($"promoted m{learner.Id}");
            }
            else if (voters.Count > 3 && random.Next(2) == 0)
            {
                var removed = voters[random.Next(voters.Count)];
                _pendingRemovals.Add(removed.Id);
                await RemoveAsync(via, removed.Id);
            }
            else if (members.Count < 6 && learners.Count == 0)
            {
                var added = sim.NewMember();
                added.Joined = true;
                Note($"add learner {added}");
                await sim.WithTimeout(via.AddMemberAsync(StoreSimulation.Info(added.Id, learner: true)).AsTask(), TimeSpan.FromSeconds(1));
                Note($"added learner {added}");
                await sim.StartMemberAsync(added);
            }
        }
        catch (Exception e) when (e is not InvariantViolationException)
        {
            Note($"membership change failed: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Removes a member as an operator would: a removal is two proposals (the Raft configuration,
    /// then the member registry), and a failure between them leaves it half done — the API says to
    /// repeat the call, so a failed removal is retried at every later membership action and at heal.
    /// </summary>
    private async Task RemoveAsync(Mvcc.Replication.ReplicatedStore via, ulong id)
    {
        Note($"remove m{id}");
        try
        {
            await sim.WithTimeout(via.RemoveMemberAsync(id).AsTask(), TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException)
        {
            // Not registered any more: an earlier attempt completed.
        }

        Note($"removed m{id}");
        _pendingRemovals.Remove(id);
        if (sim.Members.TryGetValue(id, out var gone) && gone.State != MemberState.Removed)
        {
            await sim.RetireMemberAsync(gone);
        }
    }

    /// <summary>Completes removals that failed half way (see <see cref="RemoveAsync"/>), retrying a few times.</summary>
    private async Task CompleteRemovalsAsync(int attempts)
    {
        for (int attempt = 0; attempt < attempts && _pendingRemovals.Count > 0; attempt++)
        {
            foreach (ulong id in _pendingRemovals.ToList())
            {
                var via = sim.Running.FirstOrDefault(m => m.Id != id);
                if (via?.Store is null)
                {
                    break;
                }

                try
                {
                    await RemoveAsync(via.Store, id);
                }
                catch (Exception e) when (e is not InvariantViolationException)
                {
                    Note($"removal of m{id} failed again: {e.GetType().Name}");
                    await Task.Delay(TimeSpan.FromMilliseconds(200), sim.Time, CancellationToken.None);
                }
            }
        }
    }

    private async Task RestartAsync(SimulatedMember member)
    {
        try
        {
            await sim.StartMemberAsync(member);
        }
        catch (Exception e) when (e is not InvariantViolationException)
        {
            // A member whose restart fails with a healthy disk lost data it had promised to keep.
            sim.AddViolation($"{member} failed to restart from its disk: {e}");
            member.State = MemberState.Down;
        }
    }

    private void Note(string what)
    {
        Log.Add(string.Create(CultureInfo.InvariantCulture, $"{sim.Now.TotalMilliseconds:0}ms {what}"));
        sim.Record("nemesis " + what);
    }

    private void Shuffle(List<ulong> ids)
    {
        for (int i = ids.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (ids[i], ids[j]) = (ids[j], ids[i]);
        }
    }
}
