using System.Diagnostics;
using System.Globalization;
using EmbeddedRaft.Mvcc;
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
    /// <summary>
    /// Each window's search: a step bound (the same verdict whatever the machine's load; the windows
    /// keep most searches far below it), and a wall-clock bound only as a backstop. The checker's
    /// default, 50 million: 5 million left seed 40001 of the lease-expiry profile undecided (a
    /// linearizable window of 44 operations with four leases, decided within the larger bound) once
    /// the read-index rounds changed the simulated schedules. The backstop is four minutes, not two:
    /// that seed's search takes ~20 s on a quiet machine and ran past two minutes at load ~70 (an
    /// "undecided" failure that was the machine's, not the history's); four stays under the test
    /// run's five-minute hang limit (tests/hang.runsettings), so a search that does run out is
    /// still reported as undecided with its window, not as a hung test.
    /// </summary>
    private static readonly LinearizabilityCheckerOptions SearchBounds = new() { MaxSteps = LinearizabilityCheckerOptions.DefaultMaxSteps, Timeout = TimeSpan.FromMinutes(4) };

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
        var points = new List<QuiescentPoint>();
        try
        {
            sim.Start();
            var tasks = clients.StartAll(stop.Token, stopWatchers.Token);
            finalRevision = RunPhases(sim, options, history, clients, nemesis, tasks, points, stop, stopWatchers);
        }
        catch (SimulationAbortedException)
        {
            // The violation is recorded; check what was observed up to here.
        }

        TimeSpan? violationAt = sim.FirstViolationAt;
        int windows = 0;
        var checking = Stopwatch.StartNew();
        if (violationAt is null)
        {
            windows = CheckObservations(sim, history, finalRevision, points, violations, ref violationAt);
        }

        checking.Stop();

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
            HistoryWindows = windows,
            CheckWallTime = checking.Elapsed,
            SlowFsyncs = sim.SlowFsyncs,
        };
    }

    /// <summary>The fault phase, then heal, progress and convergence; returns the revision every member converged to (0 if they did not).</summary>
    private static long RunPhases(StoreSimulation sim, SimulationOptions options, ClientHistory history, SimulatedClients clients, Nemesis nemesis, List<Task> tasks, List<QuiescentPoint> points, CancellationTokenSource stop, CancellationTokenSource stopWatchers)
    {
        // Safety phase: faults while the clients run, in parts; between two parts the nemesis heals
        // everything and the harness takes a quiescent point (the history is checked in windows).
        var part = options.FaultPhase / (options.QuiescentPoints + 1);
        for (int i = 0; i <= options.QuiescentPoints; i++)
        {
            using var stopNemesis = new CancellationTokenSource();
            var nemesisTask = sim.Scheduler.Run(() => nemesis.RunAsync(stopNemesis.Token));
            sim.RunFor(part);
            if (i == options.QuiescentPoints)
            {
                stop.Cancel();
            }
            else
            {
                clients.Pause();
            }

            stopNemesis.Cancel();
            sim.RunUntilDone(nemesisTask, "the nemesis's last fault", TimeSpan.FromSeconds(10));
            if (i < options.QuiescentPoints)
            {
                sim.RunUntilDone(sim.Scheduler.Run(nemesis.HealAsync), "healing", TimeSpan.FromSeconds(10));
                if (TakeQuiescentPoint(sim, clients) is { } point)
                {
                    points.Add(point);
                }

                // Time moves on before any client calls again: nothing is invoked at the point's instant.
                sim.Step();
                clients.Resume();
            }
        }

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

        // A last point once the clients stopped: the last window ends in the converged state (which
        // leases expired is then known, not searched for).
        if (finalRevision > 0 && TakeQuiescentPoint(sim, clients) is { } last)
        {
            points.Add(last);
        }

        // The watchers saw everything up to here (unless a compaction cut one off).
        stopWatchers.Cancel();
        sim.RunUntilDone(Task.WhenAll(tasks), "the clients' and watchers' last calls", TimeSpan.FromSeconds(10));

        return finalRevision;
    }

    /// <summary>The checks on what the clients and watchers observed: watches, serializable reads, leases, linearizability.</summary>
    /// <returns>The number of windows the client history was checked in.</returns>
    private static int CheckObservations(StoreSimulation sim, ClientHistory history, long finalRevision, IReadOnlyList<QuiescentPoint> points, List<string> violations, ref TimeSpan? violationAt)
    {
        var reference = ObservationChecks.BuildReference(history, violations);
        ObservationChecks.CheckSerializableReads(history, reference, violations);
        ObservationChecks.CheckLeases(history, reference, history.RevokesInvoked, violations);
        var operations = ObservationChecks.ResolveIndeterminate(history.Operations, reference, finalRevision).OrderBy(o => o.InvokeTicks).ToList();

        // SIM-C's checkers: the watchers' reference must be sound, every watcher must match it, every
        // acknowledged write must be in it, leases must hold against it, and the members must have
        // converged.
        ReferenceHistory? committed = null;
        if (history.WatchObservations.Count > 0)
        {
            (committed, var soundness) = ReferenceHistory.FromWatchers(history.WatchObservations, operations);
            var holes = committed.Holes;
            var acknowledged = operations.Where(o => o.Output is null || !holes.Any(h => o.Output.Revision >= h.From && o.Output.Revision <= h.To)).ToList();
            var checks = CheckResult.Combine(
                soundness,
                WatchChecker.Check(committed, history.WatchObservations, operations),
                WatchChecker.CheckAcknowledgedWrites(committed, acknowledged),
                LeaseChecker.Check(committed, operations),
                ConvergenceChecker.Check(history.MemberHashes));
            // A hole (no watcher covered some revisions: both were cut off, then compacted past) is a
            // gap in what the run observed, not a fault of the store: the checkers forget across it
            // (an acknowledged write answered inside a hole is not looked for).
            violations.AddRange(checks.Violations.Where(v => v.Rule != "reference.hole").Select(v => $"{v.Rule}: {v.Detail}"));
        }

        // The history in windows cut at the quiescent points (each searched alone: the search is
        // exponential in a window's length, not the run's), reads at past revisions checked against
        // the watchers' reference.
        var windows = HistoryWindows.Split(ClampToPoints(operations, points), EtcdKvState.Create(1), points, committed is null ? null : committed.KeysAt);
        var (failed, linearizability) = HistoryWindows.CheckAll(windows, keepHistory: true, SearchBounds, minLeaseTtlSeconds: 1);
        sim.Record(string.Create(CultureInfo.InvariantCulture, $"linearizability: {windows.Count} window(s) of {string.Join("/", windows.Select(w => w.Operations.Count))} operations: {linearizability.Verdict}"));
        switch (linearizability.Verdict)
        {
            case LinearizabilityVerdict.NotLinearizable:
                violations.Add($"client history not linearizable in {failed}: {linearizability.Explanation}");
                if (linearizability.Unplaced is { } unplaced)
                {
                    violationAt ??= TimeSpan.FromTicks(unplaced.CompleteTicks ?? unplaced.InvokeTicks);
                }

                break;
            case LinearizabilityVerdict.Unknown:
                // Never a pass: a window the search could not decide fails the seed.
                violations.Add($"linearizability undecided within the checker's bounds in {failed}: {linearizability.Explanation}");
                break;
        }

        return windows.Count;
    }

    /// <summary>
    /// A quiescent point, once the nemesis healed everything: no client call in flight (they are
    /// paused; the last started ones answered or timed out), every member of the cluster running and
    /// every one having written and applied the same last index, stable for a while (so no proposal
    /// of a timed-out call waits anywhere to commit later); then the state is read from one member
    /// without time passing. Null (no point here) when the cluster does not get there in time.
    /// </summary>
    private static QuiescentPoint? TakeQuiescentPoint(StoreSimulation sim, SimulatedClients clients)
    {
        static ulong? SettledIndex(StoreSimulation sim, SimulatedClients clients)
        {
            if (clients.InFlight > 0 || sim.Members.Values.Any(m => m.State == MemberState.Down))
            {
                return null;
            }

            var indexes = sim.Running.Select(m => m.Store!.Node.Status).Select(s => s.IsStopped ? ulong.MaxValue : s.AppliedIndex == s.PersistedIndex ? s.AppliedIndex : 0).Distinct().ToList();
            return indexes is [var only] && only is not (0 or ulong.MaxValue) ? only : null;
        }

        for (int attempt = 0; attempt < 10; attempt++)
        {
            if (!sim.RunUntil(() => SettledIndex(sim, clients) is not null, TimeSpan.FromSeconds(5)))
            {
                break;
            }

            ulong index = SettledIndex(sim, clients)!.Value;
            sim.RunFor(TimeSpan.FromMilliseconds(300));
            if (SettledIndex(sim, clients) != index)
            {
                continue;
            }

            var mvcc = sim.Running.First().Store!.Mvcc;
            var all = new byte[] { 0 };
            var kvs = mvcc.Range(new RangeRequest { Key = all, RangeEnd = all }).Kvs
                .Select(kv => new EtcdKeyValue(EtcdKvCalls.Text(kv.Key), EtcdKvCalls.Text(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease));
            var leases = mvcc.LeaseLeases().Leases.Select(id => KeyValuePair.Create(id, mvcc.LeaseTimeToLive(id).GrantedTtlSeconds));
            var state = EtcdKvState.Create(mvcc.Revision, Math.Max(0, mvcc.CompactRevision), kvs, leases);
            sim.Record(string.Create(CultureInfo.InvariantCulture, $"quiescent point at applied index {index}: {state}"));
            return new QuiescentPoint(sim.NowTicks, state);
        }

        sim.Record("no quiescent point: the cluster did not settle");
        return null;
    }

    /// <summary>
    /// An indeterminate write the reference resolved completes when a watcher first saw it, which
    /// may be after the quiescent point following it; it took effect before that point (everything
    /// was applied there), so it completes at the point at the latest.
    /// </summary>
    private static List<Operation<EtcdKvRequest, EtcdKvResponse>> ClampToPoints(List<Operation<EtcdKvRequest, EtcdKvResponse>> operations, IReadOnlyList<QuiescentPoint> points)
    {
        var clamped = new List<Operation<EtcdKvRequest, EtcdKvResponse>>(operations.Count);
        foreach (var op in operations)
        {
            var next = points.FirstOrDefault(p => p.Ticks >= op.InvokeTicks);
            clamped.Add(next is not null && op.CompleteTicks is long complete && complete > next.Ticks
                ? Operation.Completed(op.ClientId, op.InvokeTicks, next.Ticks, op.Input, op.Output!)
                : op);
        }

        return clamped;
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
