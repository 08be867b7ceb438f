using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace EmbeddedRaft.Samples;

/// <summary>
/// The story both cluster samples tell, step by step: three members elect a leader; writers put
/// keys through every member while a watcher on a follower counts every event and a reader checks
/// that linearizable reads on followers see each acknowledged put; the leader is killed and a new
/// one elected; the old leader restarts from its directory and catches up; a learner joins and is
/// promoted; then every acknowledged put is read back, the watcher's count is compared with what
/// was committed, and the members' data is compared. Only the fabric (how members talk) differs
/// between the samples: <paramref name="createFabric"/> makes it, given the logger factory the
/// story shows warnings from.
/// </summary>
internal sealed class ClusterStory(Func<ILoggerFactory, IClusterFabric> createFabric, SampleMode mode)
{
    private const int Writers = 32;
    private const int ValueSizeBytes = 256;

    private readonly StoryChecks _checks = new();
    private StoryConsole _console = null!;
    private StoryCluster? _cluster;
    private WriteLoad? _load;
    private StoryWatcher? _watcher;
    private long _leaderChanges;
    private (DateTime At, long Acknowledged) _lastProgress = (DateTime.UtcNow, 0);

    /// <summary>Tells the story; returns the process exit code: 0 only when every check passed.</summary>
    public async Task<int> RunAsync()
    {
        _console = StoryConsole.Create(mode);
        var root = Directory.CreateTempSubdirectory("embeddedraft-sample-");
        StorySummary? summary = null;
        using var loggerFactory = new StoryLoggerFactory(_console);
        var fabric = createFabric(loggerFactory);
        try
        {
            await using var cluster = new StoryCluster(fabric, root.FullName, loggerFactory);
            _cluster = cluster;
            summary = await _console.RunAsync(Progress, () => TellAsync(cluster, fabric)).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _checks.Check("the story ran to its end", false, $"{e.GetType().Name}: {e.Message}");
            AnsiConsole.WriteException(e, ExceptionFormats.ShortenEverything);
        }
        finally
        {
            await fabric.DisposeAsync().ConfigureAwait(false);
            root.Delete(recursive: true); // the WALs, snapshots and B+trees of every member
        }

        PrintSummary(summary);
        return _checks.AllPassed ? 0 : 1;
    }

    private async Task<StorySummary> TellAsync(StoryCluster cluster, IClusterFabric fabric)
    {
        var patience = mode.PatienceLimit;

        // 1. Three members, each with its own WAL, snapshots and B+tree on disk.
        _console.Step($"1. Three members start: {fabric.Description}");
        StoryMember[] founders = [cluster.Define(1), cluster.Define(2), cluster.Define(3)];
        IReadOnlyList<MemberInfo> initialMembers = [.. founders.Select(m => m.Info)];
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(founders.Select(m => cluster.StartAsync(m, initialMembers))).ConfigureAwait(false);
        foreach (var member in founders)
        {
            _console.Info($"{member}: {string.Join(", ", member.Info.PeerUrls)}, data in {member.DataDirectory}");
        }

        // 2. The election.
        _console.Step("2. They elect a leader");
        var leader = await cluster.WaitForLeaderAsync(patience).ConfigureAwait(false);
        if (!_checks.Check("a leader is elected", leader is not null, leader is null ? $"no leader within {patience.TotalSeconds:N0} s" : $"{leader} after {clock.ElapsedMilliseconds:N0} ms"))
        {
            return new StorySummary();
        }

        var status = leader!.RunningStore.Status;
        _console.Info($"{leader} leads in term {status.RaftTerm}, {clock.ElapsedMilliseconds:N0} ms after start; cluster id {status.ClusterId:x16}");

        // The watcher and the leader-change observer live on a follower that stays up all along.
        var observed = founders.First(m => m != leader);
        using var stopObserving = new CancellationTokenSource();
        var observing = ObserveLeadersAsync(observed, stopObserving.Token);

        // 3. Writers on every member, a watcher on a follower, linearizable reads on followers.
        _console.Step($"3. {Writers} writers put {ValueSizeBytes}-byte values through all three members; {observed} watches; followers serve linearizable reads");
        var start = await observed.RunningStore.RangeAsync(new RangeRequest { Key = Utf8(WriteLoad.Prefix), CountOnly = true }).ConfigureAwait(false);
        _watcher = new StoryWatcher(observed, _console);
        using var stopWatching = new CancellationTokenSource();
        var watching = _watcher.RunAsync(start.Header.Revision + 1, stopWatching.Token);

        _load = new WriteLoad(cluster, _console, Writers, ValueSizeBytes);
        var reader = new FollowerReader(cluster, _load);
        using var stopWriting = new CancellationTokenSource();
        var writing = _load.RunAsync(stopWriting.Token);
        var reading = reader.RunAsync(stopWriting.Token);
        await Task.Delay(mode.WritePhase).ConfigureAwait(false);
        _console.Info($"{_load.Acknowledged:N0} puts acknowledged; {reader.LinearizableReads:N0} linearizable reads on followers, {reader.StaleLinearizableReads} stale; " +
                      $"{reader.StaleSerializableReads:N0} of {reader.SerializableReads:N0} serializable reads made just before had not seen the put yet");

        // 4. Kill the leader (dispose its store while puts are in flight).
        _console.Step($"4. The leader, {leader}, is killed while puts are in flight");
        var oldLeader = leader;
        clock.Restart();
        await cluster.StopAsync(oldLeader).ConfigureAwait(false);
        leader = await cluster.WaitForLeaderAsync(patience).ConfigureAwait(false);
        long electionMs = clock.ElapsedMilliseconds;
        if (!_checks.Check("a new leader is elected after the leader is killed", leader is not null, leader is null ? $"none within {patience.TotalSeconds:N0} s" : $"{leader} after {electionMs:N0} ms"))
        {
            return new StorySummary();
        }

        _console.Info($"{leader} leads in term {leader!.RunningStore.Status.RaftTerm}, {electionMs:N0} ms after the kill");

        // Puts forwarded to the dead leader fail after the proposal timeout; the writers then go on.
        long acknowledgedAtElection = _load.Acknowledged;
        bool resumed = await StoryCluster.WaitUntilAsync(() => _load.Acknowledged >= acknowledgedAtElection + Writers, patience).ConfigureAwait(false);
        _checks.Check("writes continue under the new leader", resumed,
            $"{_load.Acknowledged - acknowledgedAtElection:N0} puts acknowledged after the election, {clock.ElapsedMilliseconds:N0} ms after the kill");
        _console.Info($"the writers carry on through the two survivors ({_load.Acknowledged - acknowledgedAtElection:N0} puts since the election, {clock.ElapsedMilliseconds:N0} ms after the kill)");
        await Task.Delay(mode.WritePhase).ConfigureAwait(false);

        // 5. The old leader restarts from its directory: replays its WAL, then catches up from the leader.
        _console.Step($"5. {oldLeader} restarts from its directory and catches up");
        clock.Restart();
        await cluster.StartAsync(oldLeader, initialMembers).ConfigureAwait(false);
        long target = leader.RunningStore.Status.Revision;
        bool caughtUp = await StoryCluster.WaitUntilAsync(() => oldLeader.Store?.Status.Revision >= target, patience).ConfigureAwait(false);
        long catchUpMs = clock.ElapsedMilliseconds;
        _checks.Check("the restarted member catches up with the leader", caughtUp,
            $"{oldLeader} at revision {oldLeader.Store?.Status.Revision}, the leader's was {target} when it restarted");
        _console.Info($"{oldLeader} reached revision {target:N0} (the leader's when it restarted) in {catchUpMs:N0} ms");

        // 6. A learner joins (it receives the log or a snapshot but does not vote), then is promoted.
        _console.Step("6. A fourth member joins as a learner and is promoted to voter");
        var learner = cluster.Define(4, isLearner: true);
        clock.Restart();
        var added = await AddMemberAsync(cluster, learner, patience).ConfigureAwait(false);
        if (!_checks.Check("the learner is added", added is not null, added is null ? $"not within {patience.TotalSeconds:N0} s" : $"after {clock.ElapsedMilliseconds:N0} ms"))
        {
            return new StorySummary();
        }

        await cluster.StartAsync(learner, initialMembers: null).ConfigureAwait(false);
        long learnerTarget = leader.RunningStore.Status.Revision;
        bool learnerCaughtUp = await StoryCluster.WaitUntilAsync(() => learner.Store?.Status.Revision >= learnerTarget, patience).ConfigureAwait(false);
        long learnerCatchUpMs = clock.ElapsedMilliseconds;
        _console.Info($"{learner} reached revision {learnerTarget:N0} as a learner in {learnerCatchUpMs:N0} ms");
        var members = await PromoteAsync(cluster, learner.Id, patience).ConfigureAwait(false);
        bool promoted = members?.Any(m => m.Id == learner.Id && !m.IsLearner) == true;
        _checks.Check("the learner catches up and is promoted", learnerCaughtUp && promoted,
            $"caught up: {learnerCaughtUp}; members: {(members is null ? "none listed" : string.Join(", ", members.Select(Describe)))}");
        if (members is not null)
        {
            _console.Info($"members: {string.Join(", ", members.Select(Describe))}");
        }

        await Task.Delay(mode.WritePhase / 2).ConfigureAwait(false);

        // 7. Stop the load and check every promise.
        await stopWriting.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(writing, reading).ConfigureAwait(false);
        _console.Step($"7. The writers stop: {_load.Acknowledged:N0} puts acknowledged, {_load.UnknownOutcome:N0} failed during the leader change (outcome unknown)");
        _checks.Check("writers saw only the errors a leader change causes", _load.UnexpectedErrors == 0,
            _load.UnexpectedErrors == 0 ? "none other" : $"{_load.UnexpectedErrors} unexpected, first: {_load.FirstUnexpectedError}");
        _checks.Check("linearizable reads on followers are never stale", reader.LinearizableReads > 0 && reader.StaleLinearizableReads == 0,
            reader.FirstStaleRead ?? $"{reader.LinearizableReads:N0} reads, each saw the put acknowledged just before");

        var committed = await CheckAcknowledgedPutsAsync(oldLeader).ConfigureAwait(false);
        await CheckWatcherAsync(committed, stopWatching).ConfigureAwait(false);
        await watching.ConfigureAwait(false);
        await CheckMembersAgreeAsync(cluster, patience).ConfigureAwait(false);

        await stopObserving.CancelAsync().ConfigureAwait(false);
        await observing.ConfigureAwait(false);

        var latencies = _load.SortedLatenciesMs();
        return new StorySummary
        {
            Acknowledged = _load.Acknowledged,
            UnknownOutcome = _load.UnknownOutcome,
            WritesPerSecond = _load.Acknowledged / Math.Max(_load.WritingTime.TotalSeconds, 0.001),
            P50Ms = Percentile(latencies, 0.50),
            P99Ms = Percentile(latencies, 0.99),
            LeaderChanges = Interlocked.Read(ref _leaderChanges),
            ElectionAfterKillMs = electionMs,
            RestartCatchUpMs = catchUpMs,
            LearnerCatchUpMs = learnerCatchUpMs,
            EventsDelivered = _watcher.Events,
            EventsExpected = committed,
            LinearizableFollowerReads = reader.LinearizableReads,
            SerializableFollowerReads = reader.SerializableReads,
            StaleSerializableFollowerReads = reader.StaleSerializableReads,
        };
    }

    /// <summary>
    /// Reads every key under the prefix (in pages, all at one revision) from <paramref name="member"/>
    /// — the member that was killed and restarted — and checks that every acknowledged put is there
    /// with its value. Returns how many keys exist: acknowledged puts plus those of unknown outcome
    /// that did commit, which is exactly the number of events the watcher must deliver.
    /// </summary>
    private async Task<long> CheckAcknowledgedPutsAsync(StoryMember member)
    {
        var (revision, kvs) = await ReadPrefixAsync(member.RunningStore, ReadConsistency.Linearizable, revision: 0).ConfigureAwait(false);
        var stored = kvs.ToDictionary(kv => Encoding.UTF8.GetString(kv.Key.Span), kv => kv.Value, StringComparer.Ordinal);
        long acknowledged = 0;
        var missing = new List<string>();
        foreach (var (key, value) in _load!.AcknowledgedPuts())
        {
            acknowledged++;
            if (!stored.TryGetValue(key, out var found) || !found.Span.SequenceEqual(value))
            {
                missing.Add(key);
            }
        }

        _checks.Check("every acknowledged put is still there", missing.Count == 0,
            missing.Count == 0 ? $"{acknowledged:N0} of {acknowledged:N0}, read back from {member}" : $"{missing.Count:N0} missing or wrong, first {missing[0]}");
        _console.Info($"read back from {member}: {stored.Count:N0} keys at revision {revision:N0}; all {acknowledged - missing.Count:N0} of {acknowledged:N0} acknowledged puts there");
        return stored.Count;
    }

    /// <summary>Waits until the watcher delivered every committed put, then ends it and checks what it saw.</summary>
    private async Task CheckWatcherAsync(long committed, CancellationTokenSource stopWatching)
    {
        var watcher = _watcher!;
        await StoryCluster.WaitUntilAsync(() => watcher.Events >= committed, mode.PatienceLimit).ConfigureAwait(false);
        await stopWatching.CancelAsync().ConfigureAwait(false);
        _checks.Check("the watcher on a follower delivered every committed put once, in order",
            watcher.Events == committed && watcher.FirstViolation is null,
            watcher.FirstViolation ?? $"{watcher.Events:N0} events delivered, {committed:N0} expected");
        _console.Info($"{watcher.Member}'s watcher: {watcher.Events:N0} events delivered, {committed:N0} expected");
    }

    /// <summary>
    /// Waits until every running member applied the same revision, then reads each member's own
    /// copy of the data at that revision (a serializable read: that member's store, no leader
    /// involved) and compares digests of everything (keys, values, revisions, versions), and the
    /// members' own <c>HashKV</c> at that revision. Also checks that no member raised an alarm
    /// (the stores compare hashes among themselves every <c>HashCheckInterval</c>).
    /// </summary>
    private async Task CheckMembersAgreeAsync(StoryCluster cluster, TimeSpan patience)
    {
        var running = cluster.Running;
        long revision = running.Max(m => m.RunningStore.Status.Revision);
        bool level = await StoryCluster.WaitUntilAsync(() => running.All(m => m.Store?.Status.Revision >= revision), patience).ConfigureAwait(false);
        var digests = new List<(StoryMember Member, string Digest, uint HashKV)>();
        foreach (var member in running)
        {
            var (_, kvs) = await ReadPrefixAsync(member.RunningStore, ReadConsistency.Serializable, revision).ConfigureAwait(false);
            var hashKv = await member.RunningStore.HashKVAsync(revision).ConfigureAwait(false); // the store's own hash (etcd's HashKV)
            digests.Add((member, Digest(kvs), hashKv.Hash));
        }

        string detail = string.Join(", ", digests.Select(d => $"{d.Member} {d.Digest} (HashKV {d.HashKV:x8})"));
        bool everyMember = running.Count == cluster.All.Count; // all four run by now
        bool equal = digests.Select(d => d.Digest).Distinct().Count() == 1 && digests.Select(d => d.HashKV).Distinct().Count() == 1;
        _checks.Check("every member holds the same data at one revision", everyMember && level && equal, $"revision {revision:N0}: {detail}");
        var alarms = running.Where(m => m.RunningStore.Status.Alarms != StoreAlarms.None).Select(m => $"{m} {m.RunningStore.Status.Alarms}").ToList();
        _checks.Check("no member raised an alarm", alarms.Count == 0, alarms.Count == 0 ? "none" : string.Join(", ", alarms));
        _console.Info($"digests of each member's data at revision {revision:N0}: {detail}");
    }

    /// <summary>
    /// Every key under the prefix, read in pages of 10,000 at one revision: <paramref name="revision"/>,
    /// or (0) the revision the first page was read at.
    /// </summary>
    private static async Task<(long Revision, List<KeyValue> Kvs)> ReadPrefixAsync(ReplicatedStore store, ReadConsistency consistency, long revision)
    {
        byte[] prefix = Utf8(WriteLoad.Prefix);
        byte[] end = KeyRange.PrefixEnd(prefix);
        var kvs = new List<KeyValue>();
        byte[] from = prefix;
        while (true)
        {
            var page = await store.RangeAsync(new RangeRequest { Key = from, RangeEnd = end, Limit = 10_000, Revision = revision }, consistency).ConfigureAwait(false);
            revision = page.Header.Revision;
            kvs.AddRange(page.Kvs);
            if (!page.More || page.Kvs.Count == 0)
            {
                return (revision, kvs);
            }

            from = [.. page.Kvs[^1].Key.Span, 0]; // the next key after the last one read
        }
    }

    /// <summary>A SHA-256 digest (first 8 bytes, hex) of keys, values, revisions and versions, in key order.</summary>
    private static string Digest(List<KeyValue> kvs)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> numbers = stackalloc byte[32];
        foreach (var kv in kvs)
        {
            // Lengths first, so that no two different sequences of keys and values hash alike.
            BinaryPrimitives.WriteInt32LittleEndian(numbers, kv.Key.Length);
            BinaryPrimitives.WriteInt32LittleEndian(numbers[4..], kv.Value.Length);
            BinaryPrimitives.WriteInt64LittleEndian(numbers[8..], kv.CreateRevision);
            BinaryPrimitives.WriteInt64LittleEndian(numbers[16..], kv.ModRevision);
            BinaryPrimitives.WriteInt64LittleEndian(numbers[24..], kv.Version);
            hash.AppendData(numbers);
            hash.AppendData(kv.Key.Span);
            hash.AppendData(kv.Value.Span);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset().AsSpan(0, 8));
    }

    /// <summary>
    /// Adds <paramref name="member"/> as an operator's client would: through the member it believes
    /// leads (any member would forward), and again after a failure a leader change or a loaded machine
    /// causes (no leader, a timeout, another change still pending), until <paramref name="patience"/>
    /// runs out; null then. Repeating the call is safe: each of its two steps (the registry entry,
    /// Raft's configuration) is skipped when already done. A retry whose earlier attempt was in fact
    /// applied (only its answer was lost) may find Raft refusing to add the member twice, when the
    /// configuration it read was a tick old: that is success, confirmed by the next call.
    /// </summary>
    private async Task<IReadOnlyList<MemberInfo>?> AddMemberAsync(StoryCluster cluster, StoryMember member, TimeSpan patience)
    {
        var clock = Stopwatch.StartNew();
        for (int attempt = 1; ; attempt++)
        {
            var through = cluster.KnownLeader() ?? cluster.Running[0];
            try
            {
                return await through.RunningStore.AddMemberAsync(member.Info).ConfigureAwait(false);
            }
            catch (ConfChangeRejectedException e) when (attempt > 1 && e.Reason == ConfChangeRejectReason.InvalidRequest && clock.Elapsed < patience)
            {
                _console.Info($"{member} is in the configuration already: an earlier attempt was applied after all ({e.Message}); asking again to confirm");
                await Task.Delay(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
            }
            catch (Exception e) when (clock.Elapsed < patience && (WriteLoad.IsCausedByLeaderChange(e) || e is ConfChangeRejectedException { Reason: ConfChangeRejectReason.ChangePending }))
            {
                _console.Info($"adding {member} through {through} failed for now ({e.GetType().Name}: {e.Message}); retrying");
                await Task.Delay(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _console.Problem($"adding {member} failed: {e.GetType().Name}: {e.Message}");
                return null;
            }
        }
    }

    /// <summary>
    /// Promotes a learner, retrying while the leader still finds it behind (as etcd refuses to promote
    /// a learner that is not in sync) and after a leader change or a timeout. A retry whose earlier
    /// attempt was in fact applied finds the member a voter already: that is success.
    /// </summary>
    private async Task<IReadOnlyList<MemberInfo>?> PromoteAsync(StoryCluster cluster, ulong id, TimeSpan patience)
    {
        var clock = Stopwatch.StartNew();
        for (int attempt = 1; ; attempt++)
        {
            var member = cluster.KnownLeader() ?? cluster.Running[0];
            Exception failure;
            try
            {
                return await member.RunningStore.PromoteMemberAsync(id).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                failure = e;
            }

            if (attempt > 1 && failure is ArgumentException && await IsVoterAsync(member, id).ConfigureAwait(false))
            {
                _console.Info($"member-{id} is a voter already: an earlier attempt was applied after all ({failure.Message})");
                return await member.RunningStore.MemberListAsync().ConfigureAwait(false);
            }

            if (clock.Elapsed >= patience)
            {
                _console.Problem($"promotion failed: {failure.GetType().Name}: {failure.Message}");
                return null;
            }

            _console.Info($"promotion refused for now ({failure.GetType().Name}: {failure.Message}); retrying");
            await Task.Delay(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
        }
    }

    /// <summary>Whether the cluster's member list (read linearizably through <paramref name="member"/>) has <paramref name="id"/> as a voter; false when it cannot tell now.</summary>
    private static async Task<bool> IsVoterAsync(StoryMember member, ulong id)
    {
        try
        {
            var members = await member.RunningStore.MemberListAsync().ConfigureAwait(false);
            return members.Any(m => m.Id == id && !m.IsLearner);
        }
        catch (Exception e) when (WriteLoad.IsCausedByLeaderChange(e))
        {
            return false;
        }
    }

    /// <summary>Counts and shows every leader <paramref name="member"/> sees (the first is the current one).</summary>
    private async Task ObserveLeadersAsync(StoryMember member, CancellationToken stop)
    {
        (ulong Leader, ulong Term) last = default;
        try
        {
            await foreach (var change in member.RunningStore.LeaderChanges(stop).ConfigureAwait(false))
            {
                if (change.LeaderId != 0 && (change.LeaderId, change.Term) != last)
                {
                    last = (change.LeaderId, change.Term);
                    Interlocked.Increment(ref _leaderChanges);
                    _console.Info($"{member} sees leader member-{change.LeaderId} (term {change.Term})");
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The story stopped observing.
        }
    }

    /// <summary>The progress line: called by the console a few times a second.</summary>
    private string Progress()
    {
        if (_cluster is not { } cluster)
        {
            return "starting";
        }

        var members = string.Join("  ", cluster.All.Select(m => m.Store is { } store ? $"{m.Name} r{store.Status.Revision:N0}" : $"{m.Name} down"));
        string leader = cluster.KnownLeader()?.Name ?? "none";
        if (_load is not { } load)
        {
            return $"leader {leader} | {members}";
        }

        var now = DateTime.UtcNow;
        long acknowledged = load.Acknowledged;
        double rate = (acknowledged - _lastProgress.Acknowledged) / Math.Max((now - _lastProgress.At).TotalSeconds, 0.001);
        _lastProgress = (now, acknowledged);
        return $"{acknowledged:N0} puts ({rate:N0}/s), {load.UnknownOutcome:N0} unknown | leader {leader} | {members} | watched {_watcher?.Events ?? 0:N0}";
    }

    private void PrintSummary(StorySummary? summary)
    {
        if (summary is { Acknowledged: > 0 } s)
        {
            var figures = new Table { Title = new TableTitle("Summary") }
                .AddColumn("measure").AddColumn(new TableColumn("value").RightAligned());
            figures.AddRow("puts acknowledged", $"{s.Acknowledged:N0}");
            figures.AddRow("puts failed during the leader change (outcome unknown)", $"{s.UnknownOutcome:N0}");
            figures.AddRow("writes/s (acknowledged, while writing)", $"{s.WritesPerSecond:N0}");
            figures.AddRow("put latency p50 / p99", $"{s.P50Ms:N1} ms / {s.P99Ms:N1} ms");
            figures.AddRow("leader changes seen (including the first election)", $"{s.LeaderChanges}");
            figures.AddRow("new leader after the kill", $"{s.ElectionAfterKillMs:N0} ms");
            figures.AddRow("restarted member caught up", $"{s.RestartCatchUpMs:N0} ms");
            figures.AddRow("learner caught up", $"{s.LearnerCatchUpMs:N0} ms");
            figures.AddRow("watch events delivered / expected", $"{s.EventsDelivered:N0} / {s.EventsExpected:N0}");
            figures.AddRow("linearizable follower reads (none stale)", $"{s.LinearizableFollowerReads:N0}");
            figures.AddRow("serializable follower reads not yet seeing the put", $"{s.StaleSerializableFollowerReads:N0} of {s.SerializableFollowerReads:N0}");
            AnsiConsole.Write(figures);
        }

        var checks = new Table { Title = new TableTitle("Checks") }.AddColumn("").AddColumn("check").AddColumn("detail");
        foreach (var (name, passed, detail) in _checks.Results)
        {
            checks.AddRow(passed ? "[green]pass[/]" : "[red]FAIL[/]", Markup.Escape(name), Markup.Escape(detail));
        }

        AnsiConsole.Write(checks);
        var failed = _checks.Results.Where(r => !r.Passed).Select(r => r.Name).ToList();
        AnsiConsole.MarkupLine(failed.Count == 0
            ? "[green]Every check passed.[/]"
            : $"[red]{failed.Count} check(s) failed: {Markup.Escape(string.Join("; ", failed))}.[/]");
    }

    private static string Describe(MemberInfo member) => $"{member.Name} ({(member.IsLearner ? "learner" : "voter")})";

    private static double Percentile(double[] sorted, double quantile) =>
        sorted.Length == 0 ? 0 : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(quantile * sorted.Length) - 1)];

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>The figures of one run.</summary>
    private sealed record StorySummary
    {
        public long Acknowledged { get; init; }

        public long UnknownOutcome { get; init; }

        public double WritesPerSecond { get; init; }

        public double P50Ms { get; init; }

        public double P99Ms { get; init; }

        public long LeaderChanges { get; init; }

        public long ElectionAfterKillMs { get; init; }

        public long RestartCatchUpMs { get; init; }

        public long LearnerCatchUpMs { get; init; }

        public long EventsDelivered { get; init; }

        public long EventsExpected { get; init; }

        public long LinearizableFollowerReads { get; init; }

        public long SerializableFollowerReads { get; init; }

        public long StaleSerializableFollowerReads { get; init; }
    }
}
