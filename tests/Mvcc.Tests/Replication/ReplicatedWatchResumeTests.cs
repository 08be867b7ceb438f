using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// WatchStream's promise "a new watch from the last delivered revision + 1 continues exactly where
/// this one stopped", on a replicated store: watchers that stop and resume on any member (members
/// restarted under them), while compactions race their catching up (then the promise is
/// RevisionCompactedException, whose CompactRevision says where to resume); the second test adds
/// network faults, overflowing live buffers, filters and previous key-values (docs/testing.md).
/// Checked against the test's own model of the history: the writes it made, what they answered,
/// and the keys' versions replayed from them, never the store's reads of its past.
/// </summary>
public sealed class ReplicatedWatchResumeTests
{
    private const int Steps = 160;
    private const int ResumingWatchers = 3;
    private const int KeyCount = 6;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("WATCH_RESUME_SEED", "WATCH_RESUME_SOAK_SEEDS", 5100, 2);

    [TestCaseSource(nameof(Seeds))]
    public Task AWatchResumedOnAnyMemberFromItsLastRevisionPlusOneSeesExactlyTheRestOfTheHistoryOrWhereACompactionCutIt(int seed) =>
        RunAsync(seed, adversarial: false);

    /// <summary>
    /// The same promise under what the test above spares the watchers: every member but the
    /// reference's holds 2 live events per watcher at most (MaxBufferedEvents), so a watcher not
    /// read for a step falls behind, reads the history while compactions cut it, and rejoins;
    /// leadership is transferred, a member (the leader half the time) is cut off for a few steps
    /// and single links drop, duplicate, reorder and delay messages; and watchers filter (no puts,
    /// no deletes) and ask for each event's previous key-value, each checked against the record,
    /// its previous key-values against the keys' versions replayed from it.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public Task SlowFilteredAndPrevKvWatchersResumedUnderTransfersPartitionsAndLinkFaultsSeeExactlyTheHistoryOrTheCompactionThatCutThem(int seed) =>
        RunAsync(seed, adversarial: true);

    private static async Task RunAsync(int seed, bool adversarial)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: WATCH_RESUME_SEED={seed})");
        var random = new Random(seed);
        ulong referenceMember = adversarial ? (ulong)random.Next(1, 4) : 0;
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, adversarial ? o => o.MemberId == referenceMember ? o : SmallWatchBuffers(o) : null);
        var ids = cluster.Members.Keys.Order().ToArray();

        // One watch from the start on a member never restarted, read without pause: the history
        // every resuming watcher must see, itself checked against the model below.
        if (!adversarial)
        {
            referenceMember = ids[random.Next(ids.Length)];
        }

        using var stopReference = new CancellationTokenSource();
        var reference = new List<WatchResponse>();
        var referenceLock = new Lock();
        long referenceCovered = 1;
        // Opened here, before the first write, from the next one (0): on the live path at once.
        // From revision 1, a past one, it would read that from the history only once enumerated,
        // which a loaded machine's scheduler can leave until after the first steps' compactions.
        using var referenceWatch = cluster[referenceMember].Watch(Range(0, WatcherKind.All));
        var readingReference = Task.Run(async () =>
        {
            try
            {
                await foreach (var response in referenceWatch.WithCancellation(stopReference.Token))
                {
                    lock (referenceLock)
                    {
                        reference.Add(response);
                        referenceCovered = response.Header.Revision;
                    }
                }
            }
            catch (OperationCanceledException) when (stopReference.IsCancellationRequested)
            {
            }
        });

        var model = new WriteModel();
        var compactions = new SortedSet<long>();
        WatcherKind[] kinds = adversarial ? [WatcherKind.All, WatcherKind.NoPut, WatcherKind.NoDelete | WatcherKind.PrevKv, WatcherKind.PrevKv] : [.. Enumerable.Repeat(WatcherKind.All, ResumingWatchers)];
        var watchers = kinds.Select((kind, i) => new ResumingWatcher(i, kind, slow: adversarial)).ToArray();
        if (adversarial)
        {
            // One that never stops and always catches up before it stalls again, never on the
            // reference watch's member (whose buffers are the default): overflowed between its turns.
            watchers = [.. watchers, new ResumingWatcher(watchers.Length, WatcherKind.All, slow: true) { Avoided = referenceMember }];
        }
        var faults = new NetworkFaults(cluster, adversarial);
        long fellBehind = 0;
        for (int step = 0; step < Steps; step++)
        {
            if (adversarial)
            {
                await faults.StepAsync(random, step, referenceMember);
            }

            // Clients use the members they can reach: with a member cut off, the others.
            var running = cluster.Members.Keys.Where(faults.Reachable).Order().ToArray();
            int dice = random.Next(100);
            if (dice < 60)
            {
                if (!await model.WriteAsync(cluster[running[random.Next(running.Length)]], random, step))
                {
                    // No leader (a restart, an election): the next steps wait for one, or they
                    // would all run, refused at once, before it is elected.
                    await faults.WaitForLeaderAsync();
                }
            }
            else if (dice < 68 && model.LastRevision > (compactions.Count == 0 ? 1 : compactions.Max))
            {
                long from = compactions.Count == 0 ? 2 : compactions.Max + 1;
                long at = random.NextInt64(from, model.LastRevision + 1);
                compactions.Add(at);
                TestContext.Out.WriteLine($"step {step}: compact at {at}");
                await IgnoringUnavailableAsync(() => cluster[running[random.Next(running.Length)]].CompactAsync(at, physical: random.Next(2) == 0).AsTask());
            }
            else if (dice >= 68 && dice < 72)
            {
                var others = cluster.Members.Keys.Order().Where(id => id != referenceMember).ToArray();
                ulong victim = others[random.Next(others.Length)];
                TestContext.Out.WriteLine($"step {step}: restart member {victim}");
                fellBehind += cluster[victim].Mvcc.Watches.FellBehindCount;
                await cluster.StopMemberAsync(victim);
                await cluster.StartMemberAsync(victim, cluster.InitialMembers);
            }
            else if (dice >= 72)
            {
                var watcher = watchers[random.Next(watchers.Length)];
                if (watcher.Stalling)
                {
                    await watcher.ReadAsync(cluster, faults, random, model.LastRevision, int.MaxValue);
                }
                else if (random.Next(3) == 0)
                {
                    watcher.Stop();
                }
                else
                {
                    // Adversarial: half the time a watcher catches up to the last write, so its
                    // read left waiting puts it on the live path, where the next steps overflow it.
                    await watcher.ReadAsync(cluster, faults, random, model.LastRevision, adversarial && random.Next(2) == 0 ? int.MaxValue : random.Next(1, 4));
                }
            }
        }

        // Everything written is in the history: every watcher reads up to the last revision, once
        // every member has applied it (a filtered watch's progress notification then reaches it).
        faults.HealAll();
        ulong leader = await cluster.WaitForLeaderAsync();
        long final = (await ReplicatedReadTests.ClientAsync(() => cluster[leader].RangeAsync(new RangeRequest { Key = Key("r/") }))).Header.Revision;
        foreach (var member in cluster.Members.Values)
        {
            await ReplicatedReadTests.ClientAsync(() => member.RangeAsync(new RangeRequest { Key = Key("r/") }));
        }

        foreach (var watcher in watchers)
        {
            await watcher.ReadAsync(cluster, faults, random, final, int.MaxValue);
            watcher.Stop();
        }

        fellBehind += cluster.Members.Where(m => m.Key != referenceMember).Sum(m => m.Value.Mvcc.Watches.FellBehindCount);

        // A reference watch that ended (it must not) is awaited below, where its exception surfaces.
        await Waits.UntilAsync(() => { lock (referenceLock) { return referenceCovered >= final || readingReference.IsCompleted; } }, $"the reference watch on member {referenceMember} to reach revision {final}");
        await stopReference.CancelAsync();
        await readingReference.OrFailAsync("the reference watch to end");

        var history = Events(reference, prevKv: false).Where(e => e.Revision <= final).ToList();
        model.Check(history);
        TestContext.Out.WriteLine($"{history.Count} events to revision {final}; {model.Describe()}; compactions {string.Join(", ", compactions)}; {faults.Describe()}; watchers fell behind {fellBehind} times");
        foreach (var watcher in watchers)
        {
            watcher.Check(history, final, compactions);
        }

        if (adversarial)
        {
            Assert.That(fellBehind, Is.Positive, "some watcher overflowed its buffer and read the history (or the test no longer makes one)");
        }
    }

    /// <summary>Two live events per watcher: a watcher not read for a step falls behind and reads the history.</summary>
    private static ReplicatedStoreOptions SmallWatchBuffers(ReplicatedStoreOptions options) =>
        options with { Store = options.Store with { Watch = options.Store.Watch with { MaxBufferedEvents = 2 } } };

    private static WatchRequest Range(long start, WatcherKind kind) => new()
    {
        Key = Key("r/"),
        RangeEnd = Key("r0"),
        StartRevision = start,
        NoPut = kind.HasFlag(WatcherKind.NoPut),
        NoDelete = kind.HasFlag(WatcherKind.NoDelete),
        PrevKv = kind.HasFlag(WatcherKind.PrevKv),
    };

    private static IEnumerable<Seen> Events(IEnumerable<WatchResponse> responses, bool prevKv) =>
        responses.SelectMany(r => r.Events).Select(e => new Seen(e.Type, Text(e.Kv.Key), Text(e.Kv.Value), e.Kv.ModRevision, e.Kv.CreateRevision, e.Kv.Version, prevKv && e.PrevKv is { } p ? Shown(Text(p.Value), p.ModRevision, p.CreateRevision, p.Version) : null));

    /// <summary>A key-value as a watcher's previous one is shown.</summary>
    private static string Shown(string value, long mod, long create, long version) => $"{value}@{mod} c{create} v{version}";

    /// <summary>What a watcher asks for besides the range.</summary>
    [Flags]
    private enum WatcherKind
    {
        All = 0,
        NoPut = 1,
        NoDelete = 2,
        PrevKv = 4,
    }

    /// <summary>One event as a watcher was given it; <see cref="Prev"/> only for a watch that asked for previous key-values.</summary>
    private sealed record Seen(WatchEventType Type, string Key, string Value, long Revision, long Create, long Version, string? Prev)
    {
        public string Text => EventText(Type, Key, Value, Revision, Create, Version) + (Prev is null ? string.Empty : $" prev {Prev}");
    }

    private static string EventText(WatchEventType type, string key, string? value, long revision, long create, long version) =>
        type == WatchEventType.Put ? $"{revision} put {key}={value} c{create} v{version}" : $"{revision} delete {key}";

    /// <summary>Runs a request whose refusal for want of a leader (or a timed-out proposal) changes nothing the test checks.</summary>
    private static async Task IgnoringUnavailableAsync(Func<Task> call)
    {
        try
        {
            await call().OrFailAsync("a compaction");
        }
        catch (Exception e) when (e is NoLeaderException or ProposalDroppedException or TimeoutException or RevisionCompactedException or FutureRevisionException)
        {
        }
    }

    /// <summary>
    /// The writes the test made, each a put, a delete or a two-key transaction with values never
    /// written before, and the revision each answered (none: its outcome is unknown, it may or may
    /// not be in the history, once at most).
    /// </summary>
    private sealed class WriteModel
    {
        private readonly List<Write> _writes = [];

        /// <summary>The highest revision a write answered.</summary>
        public long LastRevision { get; private set; } = 1;

        /// <summary>Makes a random write through <paramref name="member"/>; false when its outcome is unknown.</summary>
        public async Task<bool> WriteAsync(ReplicatedStore member, Random random, int step)
        {
            string key = $"r/{random.Next(KeyCount)}";
            int dice = random.Next(10);
            var write = dice switch
            {
                < 6 => new Write([(key, $"v{step}")]),
                < 8 => new Write([(key, null)]),
                _ => new Write([.. new[] { key, $"r/{random.Next(KeyCount)}" }.Distinct().Order(StringComparer.Ordinal).Select(k => (k, (string?)$"t{step}"))]),
            };
            _writes.Add(write);
            try
            {
                var (key0, value0) = write.Changes[0];
                (long revision, bool changed) = write.Changes switch
                {
                    [(_, null)] => await DeleteAsync(member, key0),
                    [(_, string)] => ((await member.PutAsync(new PutRequest { Key = Key(key0), Value = Key(value0!) }).AsTask().OrFailAsync($"a put at step {step}")).Header.Revision, true),
                    _ => ((await member.TxnAsync(new TxnRequest { Success = [.. write.Changes.Select(c => RequestOp.Put(new PutRequest { Key = Key(c.Key), Value = Key(c.Value!) }))] }).AsTask().OrFailAsync($"a transaction at step {step}")).Header.Revision, true),
                };
                write.Answered = changed ? revision : 0;
                write.Known = true;
                LastRevision = Math.Max(LastRevision, revision);
                return true;
            }
            catch (Exception e) when (e is NoLeaderException or ProposalDroppedException or TimeoutException or NodeStoppedException)
            {
                // Unknown: the proposal may still commit.
                TestContext.Out.WriteLine($"step {step}: {write} of unknown outcome ({e.GetType().Name}: {e.Message})");
                return false;
            }
        }

        private static async Task<(long, bool)> DeleteAsync(ReplicatedStore member, string key)
        {
            var response = await member.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key) }).AsTask().OrFailAsync("a delete");
            return (response.Header.Revision, response.Deleted > 0);
        }

        /// <summary>
        /// Replays <paramref name="history"/> (the reference watch's events) against the writes: every
        /// revision's events are exactly one write's changes, applied to the keys as the model holds
        /// them (creation revision and version included); a write that answered a revision is at
        /// that revision; one of unknown outcome is used once at most; none that answered is missing.
        /// </summary>
        public void Check(IReadOnlyList<Seen> history)
        {
            var keys = new Dictionary<string, (long Create, long Version)>(StringComparer.Ordinal);
            var unused = _writes.ToHashSet();
            long previous = 0;
            foreach (var group in history.GroupBy(e => e.Revision))
            {
                long revision = group.Key;
                Assert.That(revision, Is.GreaterThan(previous), $"revisions in order: {revision} after {previous}");
                previous = revision;
                var seen = group.Select(e => e.Text).ToList();
                var write = unused.FirstOrDefault(w => w.Known && w.Answered == revision)
                    ?? unused.FirstOrDefault(w => !w.Known && Expected(w, revision, keys) is { } e && e.SequenceEqual(seen));
                Assert.That(write, Is.Not.Null, $"revision {revision} ({string.Join("; ", seen)}) is no write the test made, or not as the keys stood");
                Assert.That(seen, Is.EqualTo(Expected(write!, revision, keys)), $"revision {revision} against the write that answered it");
                unused.Remove(write!);
                foreach (var (key, value) in write!.Changes)
                {
                    if (value is null)
                    {
                        keys.Remove(key);
                    }
                    else
                    {
                        keys[key] = keys.TryGetValue(key, out var was) ? (was.Create, was.Version + 1) : (revision, 1);
                    }
                }
            }

            var missing = unused.Where(w => w.Known && w.Answered != 0).Select(w => $"{w.Answered}: {w}").ToList();
            Assert.That(missing, Is.Empty, "writes that answered a revision, missing from the history");
        }

        /// <summary>The events <paramref name="write"/> makes at <paramref name="revision"/> on <paramref name="keys"/>; null when it changes nothing (a delete of an absent key).</summary>
        private static List<string>? Expected(Write write, long revision, Dictionary<string, (long Create, long Version)> keys)
        {
            if (write.Changes is [(string key, null)])
            {
                return keys.ContainsKey(key) ? [EventText(WatchEventType.Delete, key, null, revision, 0, 0)] : null;
            }

            return [.. write.Changes.Select(c => keys.TryGetValue(c.Key, out var was)
                ? EventText(WatchEventType.Put, c.Key, c.Value, revision, was.Create, was.Version + 1)
                : EventText(WatchEventType.Put, c.Key, c.Value, revision, revision, 1))];
        }

        public string Describe() => $"{_writes.Count} writes, {_writes.Count(w => !w.Known)} of unknown outcome";

        private sealed class Write(IReadOnlyList<(string Key, string? Value)> changes)
        {
            public IReadOnlyList<(string Key, string? Value)> Changes { get; } = changes;

            public bool Known { get; set; }

            /// <summary>The revision the write answered; 0 when it changed nothing (or is unknown).</summary>
            public long Answered { get; set; }

            public override string ToString() => string.Join(", ", Changes.Select(c => c.Value is null ? $"delete {c.Key}" : $"put {c.Key}={c.Value}"));
        }
    }

    /// <summary>
    /// A client's watch that stops and resumes: each time on a random running member, from the last
    /// revision it was delivered + 1; told of a compaction, from the compact revision + 1. A slow
    /// one (<paramref name="slow"/>) leaves a read waiting between its turns, as a consumer in an
    /// <c>await foreach</c> that handles each response slowly: its watch goes live, is handed
    /// one response, and the writes of the next steps pile up in its buffer until they overflow it.
    /// </summary>
    private sealed class ResumingWatcher(int number, WatcherKind kind, bool slow)
    {
        private Task<bool>? _waiting;

        /// <summary>A member it never watches on when it can watch on another (0: none).</summary>
        public ulong Avoided { get; init; }

        /// <summary>Read to the last write at each turn, never stopped by the test (only by a cut or a compaction).</summary>
        public bool Stalling => Avoided != 0;
        private readonly List<Seen> _seen = [];
        private readonly List<(long From, long Compact)> _cut = [];
        private readonly List<long> _starts = [];
        private WatchStream? _stream;
        private IAsyncEnumerator<WatchResponse>? _responses;
        private ulong _member;
        // Revision 1 is the empty store's: no event, so a new watch from 1 has nothing below 2 to wait for.
        private long _covered = 1;
        private long _next = 1;

        public void Stop()
        {
            if (_waiting is { } waiting)
            {
                // The read left waiting ends with the watch (disposed): nothing to take from it.
                _ = waiting.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                _waiting = null;
            }

            _stream?.Dispose();
            _stream = null;
            _responses = null;
        }

        /// <summary>Reads up to <paramref name="responses"/> responses while the watch is below <paramref name="target"/> (a revision some write answered).</summary>
        public async Task ReadAsync(ReplicatedCluster cluster, NetworkFaults faults, Random random, long target, int responses)
        {
            if (_responses is not null && !faults.Reachable(_member))
            {
                // Its member is cut off: the client moves to another.
                Stop();
            }

            for (int read = 0; read < responses && _covered < target; read++)
            {
                if (_responses is null)
                {
                    var running = cluster.Members.Keys.Where(faults.Reachable).Order().ToArray();
                    if (running.Any(id => id != Avoided))
                    {
                        running = [.. running.Where(id => id != Avoided)];
                    }

                    _member = running[random.Next(running.Length)];
                    _starts.Add(_next);
                    _stream = cluster[_member].Watch(Range(_next, kind));
                    _responses = _stream.GetAsyncEnumerator();
                }

                if (kind.HasFlag(WatcherKind.NoPut) || kind.HasFlag(WatcherKind.NoDelete))
                {
                    // The revisions it waits for may all be filtered out: a progress notification
                    // tells it how far it is covered (and must not claim more than was delivered).
                    _stream!.RequestProgress();
                }

                try
                {
                    var next = _waiting ?? _responses.MoveNextAsync().AsTask();
                    _waiting = null;
                    if (!await next.OrFailAsync($"watcher {number}'s next response above {_covered} (target {target})", cluster.Describe))
                    {
                        Stop();
                        continue;
                    }
                }
                catch (RevisionCompactedException compacted)
                {
                    // The history from _next is gone: resume after the compaction, as the exception says.
                    Assert.That(compacted.CompactRevision, Is.GreaterThanOrEqualTo(_next), $"watcher {number} told of a compaction at {compacted.CompactRevision}, below where it asked to start ({_next})");
                    Assert.That(compacted.CompactRevision, Is.LessThanOrEqualTo(cluster[_member].Mvcc.CompactRevision), $"watcher {number} told of a compaction at {compacted.CompactRevision} its member {_member} has not made");
                    _cut.Add((_next, compacted.CompactRevision));
                    _next = compacted.CompactRevision + 1;
                    _covered = Math.Max(_covered, compacted.CompactRevision);
                    Stop();
                    continue;
                }
                catch (ObjectDisposedException)
                {
                    // Its member stopped (a restart): resume on another.
                    Stop();
                    continue;
                }

                // Every event of the response at or above where the watch resumed (or the end of the
                // previous response); the events of one revision all in it.
                var response = _responses.Current;
                long from = _next;
                foreach (var e in Events([response], kind.HasFlag(WatcherKind.PrevKv)))
                {
                    Assert.That(e.Revision, Is.GreaterThanOrEqualTo(from), $"watcher {number} delivered revision {e.Revision} below where it resumed or had read to ({from})");
                    _seen.Add(e);
                    _next = e.Revision + 1;
                }

                _covered = response.Header.Revision;
            }

            if (slow && _responses is not null && _waiting is null)
            {
                _waiting = _responses.MoveNextAsync().AsTask();
            }
        }

        /// <summary>
        /// Its events, across every resumption, are exactly <paramref name="history"/>'s, less the
        /// revisions each compaction it was told of cut ([asked, compact revision]), and each such
        /// compact revision is one the test asked for. Only its events to <paramref name="final"/> are
        /// compared: a write of unknown outcome may commit after the read that fixed <paramref name="final"/>,
        /// and a last response may carry it.
        /// </summary>
        public void Check(IReadOnlyList<Seen> history, long final, IReadOnlySet<long> compactions)
        {
            foreach (var (from, compact) in _cut)
            {
                Assert.That(compactions, Does.Contain(compact), $"watcher {number} told of a compaction at {compact}, which no one asked for");
            }

            // The history as this watcher asked for it: filtered, each event with the key's
            // previous version as the history before it left the key (none for a new key).
            var latest = new Dictionary<string, string>(StringComparer.Ordinal);
            var asked = new List<Seen>();
            foreach (var e in history)
            {
                latest.TryGetValue(e.Key, out string? prev);
                latest.Remove(e.Key);
                if (e.Type == WatchEventType.Put)
                {
                    latest[e.Key] = Shown(e.Value, e.Revision, e.Create, e.Version);
                }

                bool filtered = e.Type == WatchEventType.Put ? kind.HasFlag(WatcherKind.NoPut) : kind.HasFlag(WatcherKind.NoDelete);
                if (!filtered)
                {
                    asked.Add(kind.HasFlag(WatcherKind.PrevKv) ? e with { Prev = prev } : e);
                }
            }

            var expected = asked.Where(e => !_cut.Any(c => e.Revision >= c.From && e.Revision <= c.Compact)).ToList();
            var actual = _seen.Where(e => e.Revision <= final).ToList();

            // As etcd's watch server, the store reads an event's previous key-value at its revision - 1
            // and leaves it out when a compaction (at or above the event's revision) removed that
            // revision first: allowed only when the test asked for such a compaction.
            int prevCompacted = 0;
            for (int i = 0; i < Math.Min(actual.Count, expected.Count); i++)
            {
                if (expected[i].Prev is not null && actual[i] == expected[i] with { Prev = null } && compactions.Any(c => c >= expected[i].Revision))
                {
                    expected[i] = actual[i];
                    prevCompacted++;
                }
            }

            Assert.That(actual.Select(e => e.Text).ToList(), Is.EqualTo(expected.Select(e => e.Text).ToList()), $"watcher {number} ({kind})'s events over {_starts.Count} starts ({string.Join(", ", _starts)}) and cuts ({string.Join(", ", _cut)}) against the history");
            TestContext.Out.WriteLine($"watcher {number} ({kind}): {_seen.Count} events, {_starts.Count} starts, {_cut.Count} cut by compaction{(kind.HasFlag(WatcherKind.PrevKv) ? $", {prevCompacted} previous key-values compacted away" : string.Empty)}");
        }
    }

    /// <summary>
    /// The adversarial run's network (nothing when not <c>enabled</c>): before a step, maybe a
    /// leadership transfer, one member cut off (the leader half the time) for 2 to 10 steps, or
    /// one directed link made to drop, duplicate, reorder and delay messages until the next heal.
    /// Clients keep to the members they can reach (<see cref="Reachable"/>).
    /// </summary>
    private sealed class NetworkFaults(ReplicatedCluster cluster, bool enabled)
    {
        private static readonly LinkFaults s_badLink = new() { DropRate = 0.2, DuplicateRate = 0.1, ReorderRate = 0.2, Delay = TimeSpan.FromMilliseconds(2), DelayJitter = TimeSpan.FromMilliseconds(10) };
        private ulong _isolated;
        private int _healAt;
        private int _transfers;
        private int _isolations;
        private int _leaderIsolations;
        private int _badLinks;

        public bool Reachable(ulong id) => id != _isolated;

        public async Task StepAsync(Random random, int step, ulong reference)
        {
            if (_isolated != 0 && step >= _healAt)
            {
                TestContext.Out.WriteLine($"step {step}: heal member {_isolated}");
                HealAll();
            }

            var running = cluster.Members.Keys.Where(Reachable).Order().ToArray();
            int dice = random.Next(100);
            if (dice < 5)
            {
                ulong target = running[random.Next(running.Length)];
                _transfers++;
                TestContext.Out.WriteLine($"step {step}: transfer leadership to member {target}");
                try
                {
                    await cluster[target].TransferLeadershipAsync(target).AsTask().OrFailAsync($"a leadership transfer to {target}", cluster.Describe);
                }
                catch (Exception e) when (e is TimeoutException or NoLeaderException or ProposalDroppedException)
                {
                    // Abandoned (an election, a slow link): a transfer that did not happen.
                }

                await WaitForLeaderAsync();
            }
            else if (dice < 9 && _isolated == 0)
            {
                ulong leader = running.FirstOrDefault(id => cluster[id].Node.Status.Raft.SoftState.Role == StateRole.Leader);
                _isolated = leader != 0 && random.Next(2) == 0 ? leader : running[random.Next(running.Length)];
                _leaderIsolations += _isolated == leader ? 1 : 0;
                _isolations++;
                _healAt = step + random.Next(2, 11);
                TestContext.Out.WriteLine($"step {step}: cut off member {_isolated}{(_isolated == leader ? " (the leader)" : string.Empty)}{(_isolated == reference ? " (the reference watch's)" : string.Empty)} until step {_healAt}");
                cluster.Network.Isolate(_isolated);
                await WaitForLeaderAsync();
            }
            else if (dice < 14)
            {
                ulong from = running[random.Next(running.Length)];
                ulong to = cluster.Members.Keys.Where(id => id != from).ElementAt(random.Next(cluster.Members.Count - 1));
                _badLinks++;
                TestContext.Out.WriteLine($"step {step}: link {from} -> {to} drops, duplicates, reorders and delays");
                cluster.Network.SetLinkFaults(from, to, s_badLink);
            }
        }

        /// <summary>Waits until the members clients can reach agree on a leader among them.</summary>
        public async Task WaitForLeaderAsync()
        {
            if (!enabled || _isolated == 0)
            {
                await cluster.WaitForLeaderAsync();
                return;
            }

            await Waits.UntilAsync(
                () =>
                {
                    var leaders = cluster.Members.Where(m => Reachable(m.Key)).Select(m => m.Value.Status.LeaderId).Distinct().ToList();
                    return leaders is [ulong leader] && Reachable(leader) && cluster.Members.ContainsKey(leader);
                },
                $"a leader the members other than {_isolated} agree on");
        }

        public void HealAll()
        {
            cluster.Network.Heal();
            _isolated = 0;
        }

        public string Describe() => enabled ? $"{_transfers} leadership transfers, {_isolations} members cut off ({_leaderIsolations} leaders), {_badLinks} faulty links" : "no network faults";
    }
}
