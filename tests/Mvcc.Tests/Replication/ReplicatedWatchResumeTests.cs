using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// WatchStream's promise "a new watch from the last delivered revision + 1 continues exactly where
/// this one stopped", on a replicated store: watchers that stop and resume on any member (members
/// restarted under them), while compactions race their catching up (then the promise is
/// RevisionCompactedException, whose CompactRevision says where to resume). Checked against the
/// test's own model of the history: the writes it made, what they answered, and the keys' versions
/// replayed from them, never the store's reads of its past.
/// </summary>
public sealed class ReplicatedWatchResumeTests
{
    private const int Steps = 160;
    private const int ResumingWatchers = 3;
    private const int KeyCount = 6;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("WATCH_RESUME_SEED", "WATCH_RESUME_SOAK_SEEDS", 5100, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task AWatchResumedOnAnyMemberFromItsLastRevisionPlusOneSeesExactlyTheRestOfTheHistoryOrWhereACompactionCutIt(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: WATCH_RESUME_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var ids = cluster.Members.Keys.Order().ToArray();

        // One watch from the start on a member never restarted, read without pause: the history
        // every resuming watcher must see, itself checked against the model below.
        ulong referenceMember = ids[random.Next(ids.Length)];
        using var stopReference = new CancellationTokenSource();
        var reference = new List<WatchResponse>();
        var referenceLock = new Lock();
        long referenceCovered = 1;
        var readingReference = Task.Run(async () =>
        {
            try
            {
                await foreach (var response in cluster[referenceMember].WatchAsync(Range(1), stopReference.Token))
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
        var watchers = Enumerable.Range(0, ResumingWatchers).Select(i => new ResumingWatcher(i)).ToArray();
        for (int step = 0; step < Steps; step++)
        {
            var running = cluster.Members.Keys.Order().ToArray();
            int dice = random.Next(100);
            if (dice < 60)
            {
                if (!await model.WriteAsync(cluster[running[random.Next(running.Length)]], random, step))
                {
                    // No leader (a restart, an election): the next steps wait for one, or they
                    // would all run, refused at once, before it is elected.
                    await cluster.WaitForLeaderAsync();
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
                ulong victim = running.Where(id => id != referenceMember).ElementAt(random.Next(running.Length - 1));
                TestContext.Out.WriteLine($"step {step}: restart member {victim}");
                await cluster.StopMemberAsync(victim);
                await cluster.StartMemberAsync(victim, cluster.InitialMembers);
            }
            else if (dice >= 72)
            {
                var watcher = watchers[random.Next(watchers.Length)];
                if (random.Next(3) == 0)
                {
                    watcher.Stop();
                }
                else
                {
                    await watcher.ReadAsync(cluster, random, model.LastRevision, random.Next(1, 4));
                }
            }
        }

        // Everything written is in the history: every watcher reads up to the last revision.
        ulong leader = await cluster.WaitForLeaderAsync();
        long final = (await ReplicatedReadTests.ClientAsync(() => cluster[leader].RangeAsync(new RangeRequest { Key = Key("r/") }))).Header.Revision;
        foreach (var watcher in watchers)
        {
            await watcher.ReadAsync(cluster, random, final, int.MaxValue);
            watcher.Stop();
        }

        await Waits.UntilAsync(() => { lock (referenceLock) { return referenceCovered >= final; } }, $"the reference watch on member {referenceMember} to reach revision {final}");
        await stopReference.CancelAsync();
        await readingReference.OrFailAsync("the reference watch to end");

        var history = Events(reference).Where(e => e.Revision <= final).ToList();
        model.Check(history);
        TestContext.Out.WriteLine($"{history.Count} events to revision {final}; {model.Describe()}; compactions {string.Join(", ", compactions)}");
        foreach (var watcher in watchers)
        {
            watcher.Check(history, final, compactions);
        }
    }

    private static WatchRequest Range(long start) => new() { Key = Key("r/"), RangeEnd = Key("r0"), StartRevision = start };

    private static IEnumerable<(long Revision, string Text)> Events(IEnumerable<WatchResponse> responses) =>
        responses.SelectMany(r => r.Events).Select(e => (e.Kv.ModRevision, EventText(e.Type, Text(e.Kv.Key), Text(e.Kv.Value), e.Kv.ModRevision, e.Kv.CreateRevision, e.Kv.Version)));

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
        public void Check(IReadOnlyList<(long Revision, string Text)> history)
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
    /// revision it was delivered + 1; told of a compaction, from the compact revision + 1.
    /// </summary>
    private sealed class ResumingWatcher(int number)
    {
        private readonly List<(long Revision, string Text)> _seen = [];
        private readonly List<(long From, long Compact)> _cut = [];
        private readonly List<long> _starts = [];
        private WatchStream? _stream;
        private IAsyncEnumerator<WatchResponse>? _responses;
        // Revision 1 is the empty store's: no event, so a new watch from 1 has nothing below 2 to wait for.
        private long _covered = 1;
        private long _next = 1;

        public void Stop()
        {
            _stream?.Dispose();
            _stream = null;
            _responses = null;
        }

        /// <summary>Reads up to <paramref name="responses"/> responses while the watch is below <paramref name="target"/> (a revision some write answered).</summary>
        public async Task ReadAsync(ReplicatedCluster cluster, Random random, long target, int responses)
        {
            for (int read = 0; read < responses && _covered < target; read++)
            {
                if (_responses is null)
                {
                    var running = cluster.Members.Keys.Order().ToArray();
                    ulong member = running[random.Next(running.Length)];
                    _starts.Add(_next);
                    _stream = cluster[member].Watch(Range(_next));
                    _responses = _stream.GetAsyncEnumerator();
                }

                try
                {
                    if (!await _responses.MoveNextAsync().AsTask().OrFailAsync($"watcher {number}'s next response above {_covered} (target {target})", cluster.Describe))
                    {
                        Stop();
                        continue;
                    }
                }
                catch (RevisionCompactedException compacted)
                {
                    // The history from _next is gone: resume after the compaction, as the exception says.
                    Assert.That(compacted.CompactRevision, Is.GreaterThanOrEqualTo(_next), $"watcher {number} told of a compaction at {compacted.CompactRevision}, below where it asked to start ({_next})");
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
                foreach (var e in Events([response]))
                {
                    Assert.That(e.Revision, Is.GreaterThanOrEqualTo(from), $"watcher {number} delivered revision {e.Revision} below where it resumed or had read to ({from})");
                    _seen.Add(e);
                    _next = e.Revision + 1;
                }

                _covered = response.Header.Revision;
            }
        }

        /// <summary>
        /// Its events, across every resumption, are exactly <paramref name="history"/>'s, less the
        /// revisions each compaction it was told of cut ([asked, compact revision]), and each such
        /// compact revision is one the test asked for. Only its events to <paramref name="final"/> are
        /// compared: a write of unknown outcome may commit after the read that fixed <paramref name="final"/>,
        /// and a last response may carry it.
        /// </summary>
        public void Check(IReadOnlyList<(long Revision, string Text)> history, long final, IReadOnlySet<long> compactions)
        {
            foreach (var (from, compact) in _cut)
            {
                Assert.That(compactions, Does.Contain(compact), $"watcher {number} told of a compaction at {compact}, which no one asked for");
            }

            var expected = history.Where(e => !_cut.Any(c => e.Revision >= c.From && e.Revision <= c.Compact)).ToList();
            Assert.That(_seen.Where(e => e.Revision <= final).ToList(), Is.EqualTo(expected), $"watcher {number}'s events over {_starts.Count} starts ({string.Join(", ", _starts)}) and cuts ({string.Join(", ", _cut)}) against the history");
            TestContext.Out.WriteLine($"watcher {number}: {_seen.Count} events, {_starts.Count} starts, {_cut.Count} cut by compaction");
        }
    }
}
