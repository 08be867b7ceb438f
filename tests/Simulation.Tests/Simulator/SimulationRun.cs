using System.Diagnostics;
using System.Globalization;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// One seed, start to verdict: start the cluster; clients, watchers and the nemesis act for the
/// fault phase; then every fault is healed, every member that is down restarts, and the cluster
/// must make progress and converge; then every checker runs over what was observed.
/// </summary>
internal static class SimulationRun
{
    /// <summary>etcd's KV with leases (the members' minimum lease TTL is 1 s), without past revisions (no client reads them).</summary>
    private static readonly EtcdKvModel Model = new(EtcdKvState.Create(1), keepHistory: false, minLeaseTtlSeconds: 1);

    /// <summary>
    /// Runs <paramref name="options"/>'s seed on the calling thread. The thread's synchronization
    /// context is cleared for the run: an await inside the simulation must resume on the
    /// simulation's scheduler, never on a test framework's context.
    /// </summary>
    public static SimulationResult Run(SimulationOptions options)
    {
        var context = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(null);
        try
        {
            return RunOnThisThread(options);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(context);
        }
    }

    private static SimulationResult RunOnThisThread(SimulationOptions options)
    {
        var wall = Stopwatch.StartNew();
        var history = new ClientHistory();
        var violations = new List<string>();
        using var sim = new StoreSimulation(options);
        var clients = new SimulatedClients(sim, history);
        var nemesis = new Nemesis(sim, new Random(sim.NextSeed()));
        using var stop = new CancellationTokenSource();
        using var stopWatchers = new CancellationTokenSource();
        long finalRevision = 0;
        try
        {
            sim.Start();
            var tasks = clients.StartAll(stop.Token, stopWatchers.Token);
            var nemesisTask = sim.Scheduler.Run(() => nemesis.RunAsync(stop.Token));
            finalRevision = RunPhases(sim, options, history, clients, nemesis, tasks, nemesisTask, stop, stopWatchers);
        }
        catch (SimulationAbortedException)
        {
            // The violation is recorded; check what was observed up to here.
        }

        TimeSpan? violationAt = sim.FirstViolationAt;
        if (violationAt is null)
        {
            CheckObservations(history, finalRevision, violations, ref violationAt);
        }

        // Work that reached the scheduler from another thread ran when that thread's timing said:
        // the run is no longer a function of its seed.
        // Reported apart from the violations; both the seed test and the replay test fail on any.
        var determinismWarnings = sim.Scheduler.QueuedOffThread is { Count: > 0 } escaped
            ? new[] { $"{escaped.Count} task(s) queued from another thread than the simulation's; the first:\n{escaped[0]}" }
            : [];

        var all = sim.Violations.Concat(violations).ToList();
        return new SimulationResult(
            options.Seed,
            sim.Trace.Hash,
            sim.Trace.Count,
            all,
            sim.Trace.Tail(50, all.Count > 0 ? violationAt : null),
            nemesis.Log,
            sim.InitialMembers.Count,
            history.Completed,
            history.Indeterminate,
            history.WatchStreams.Sum(s => s.Count),
            sim.Raft.HighestCommittedIndex,
            sim.Now,
            wall.Elapsed,
            options.KeepTrace ? sim.Trace.All.ToList() : [])
        {
            DeterminismWarnings = determinismWarnings,
        };
    }

    /// <summary>The fault phase, then heal, progress and convergence; returns the revision every member converged to (0 if they did not).</summary>
    private static long RunPhases(StoreSimulation sim, SimulationOptions options, ClientHistory history, SimulatedClients clients, Nemesis nemesis, List<Task> tasks, Task nemesisTask, CancellationTokenSource stop, CancellationTokenSource stopWatchers)
    {
        // Safety phase: faults while the clients run.
        sim.RunFor(options.FaultPhase);
        stop.Cancel();
        sim.RunUntilDone(nemesisTask, "the nemesis's last fault", TimeSpan.FromSeconds(10));

        // Liveness phase: heal everything; the cluster must make progress and converge.
        sim.RunUntilDone(sim.Scheduler.Run(nemesis.HealAsync), "healing", TimeSpan.FromSeconds(10));
        var probe = sim.Scheduler.Run(() => clients.ProbeProgressAsync(999));
        sim.RunUntilDone(probe, "a write after healing", TimeSpan.FromSeconds(15));
        if (probe.IsCompletedSuccessfully && !probe.Result)
        {
            sim.AddViolation("no progress after healing: 20 writes in a row failed");
        }

        sim.RunFor(options.QuiescePhase);
        long finalRevision = CheckConvergence(sim, history);

        // The watchers saw everything up to here (unless a compaction cut one off).
        stopWatchers.Cancel();
        sim.RunUntilDone(Task.WhenAll(tasks), "the clients' and watchers' last calls", TimeSpan.FromSeconds(10));

        return finalRevision;
    }

    /// <summary>The checks on what the clients and watchers observed: watches, serializable reads, leases, linearizability.</summary>
    private static void CheckObservations(ClientHistory history, long finalRevision, List<string> violations, ref TimeSpan? violationAt)
    {
        var reference = ObservationChecks.BuildReference(history, violations);
        ObservationChecks.CheckSerializableReads(history, reference, violations);
        ObservationChecks.CheckLeases(history, reference, history.RevokesInvoked, violations);
        var operations = ObservationChecks.ResolveIndeterminate(history.Operations, reference, finalRevision).OrderBy(o => o.InvokeTicks).ToList();

        // SIM-C's checkers: the watchers' reference must be sound, every watcher must match it, leases
        // must hold against it, and the members must have converged.
        if (history.WatchObservations.Count > 0)
        {
            var (committed, soundness) = ReferenceHistory.FromWatchers(history.WatchObservations, operations);
            var checks = CheckResult.Combine(
                soundness,
                WatchChecker.Check(committed, history.WatchObservations, operations),
                LeaseChecker.Check(committed, operations),
                ConvergenceChecker.Check(history.MemberHashes));
            // A hole (no watcher covered some revisions: both were cut off, then compacted past) is a
            // gap in what the run observed, not a fault of the store: the checkers forget across it.
            violations.AddRange(checks.Violations.Where(v => v.Rule != "reference.hole").Select(v => $"{v.Rule}: {v.Detail}"));
        }

        var linearizability = LinearizabilityChecker.Check(Model, operations, new LinearizabilityCheckerOptions { Timeout = TimeSpan.FromSeconds(30) });
        switch (linearizability.Verdict)
        {
            case LinearizabilityVerdict.NotLinearizable:
                violations.Add("client history not linearizable: " + linearizability.Explanation);
                if (linearizability.Unplaced is { } unplaced)
                {
                    violationAt ??= TimeSpan.FromTicks(unplaced.CompleteTicks ?? unplaced.InvokeTicks);
                }

                break;
            case LinearizabilityVerdict.Unknown:
                violations.Add("linearizability undecided within the checker's bounds: " + linearizability.Explanation);
                break;
        }
    }

    /// <summary>After healing, every member of the final configuration reaches the same revision with the same hash; returns that revision (0 if none).</summary>
    private static long CheckConvergence(StoreSimulation sim, ClientHistory history)
    {
        var running = sim.Running.ToList();
        if (running.Count == 0)
        {
            sim.AddViolation("no member running after healing");
            return 0;
        }

        // An operator asks again (and elsewhere) when a linearizable read times out.
        Task<IReadOnlyList<MemberInfo>>? list = null;
        for (int attempt = 0; attempt < 5 && list is not { IsCompletedSuccessfully: true }; attempt++)
        {
            var via = running[attempt % running.Count].Store!;
            list = sim.Scheduler.Run(async () => await via.MemberListAsync());
            sim.RunUntil(() => list.IsCompleted, TimeSpan.FromSeconds(5));
            if (!list.IsCompletedSuccessfully)
            {
                sim.Record($"member list on {running[attempt % running.Count]} failed: {list.Exception?.GetBaseException().Message ?? "timed out"}");
            }
        }

        if (list is not { IsCompletedSuccessfully: true })
        {
            sim.AddViolation($"the member list could not be read after healing (5 attempts): {list?.Exception?.GetBaseException().Message ?? "timed out"}");
            return 0;
        }

        var members = list.Result.Select(m => m.Id).ToHashSet();
        var inCluster = running.Where(m => members.Contains(m.Id)).ToList();
        foreach (var missing in members.Where(id => !inCluster.Any(m => m.Id == id)))
        {
            sim.Record($"member m{missing} is in the configuration but not running");
        }

        bool converged = sim.RunUntil(
            () => inCluster.Select(m => (m.Store!.Status.Revision, m.Store!.Status.RaftAppliedIndex)).Distinct().Count() == 1,
            TimeSpan.FromSeconds(10));
        if (!converged)
        {
            sim.AddViolation($"members did not converge after healing: {string.Join(", ", inCluster.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m} rev {m.Store!.Status.Revision} applied {m.Store!.Status.RaftAppliedIndex}")))}");
            return 0;
        }

        var hashes = inCluster.Select(m => (Member: m, Hash: sim.Scheduler.Run(async () => await m.Store!.HashKVAsync()))).ToList();
        if (!sim.RunUntil(() => hashes.All(h => h.Hash.IsCompleted), TimeSpan.FromSeconds(5)))
        {
            sim.AddViolation("HashKV did not answer after healing");
            return 0;
        }

        foreach (var (member, hash) in hashes.Where(h => h.Hash.IsCompletedSuccessfully))
        {
            var answer = hash.Result;
            history.MemberHashes.Add(new MemberHash(member.Id, answer.Header.Revision, answer.CompactRevision, answer.HashRevision, answer.Hash));
        }

        var distinct = hashes.Where(h => h.Hash.IsCompletedSuccessfully).Select(h => (h.Hash.Result.HashRevision, h.Hash.Result.Hash)).Distinct().ToList();
        sim.Record($"convergence: {string.Join(", ", hashes.Select(h => h.Hash.IsCompletedSuccessfully ? string.Create(CultureInfo.InvariantCulture, $"{h.Member} hash {h.Hash.Result.Hash:x8}@{h.Hash.Result.HashRevision}") : $"{h.Member} failed {h.Hash.Exception?.GetBaseException().GetType().Name}"))}");
        if (distinct.Count > 1)
        {
            sim.AddViolation($"members diverged: {string.Join(", ", hashes.Select(h => string.Create(CultureInfo.InvariantCulture, $"{h.Member} hash {h.Hash.Result.Hash:x8} at revision {h.Hash.Result.HashRevision}")))}");
        }

        return inCluster[0].Store!.Status.Revision;
    }
}
