using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Index;

/// <summary>
/// The key index's histories against an independent model of etcd's <c>keyIndex</c> (each key's
/// generations as plain lists, compacted by etcd's <c>doCompact</c> rules), not against
/// <see cref="KeyHistory"/> itself: a key's live generation answers the writer's question (its
/// latest revision, creation and version at the present) from revisions held inline
/// (<see cref="RevisionList"/>'s first and last), and those must stay equal to the generation's
/// whole list while keys are written again and again (the array grows), deleted, recreated and
/// compacted (the array shrinks, back to one inline revision or to none).
/// </summary>
public sealed class KeyGenerationsModelTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    /// <summary>
    /// Random puts (a few keys written many times, so their live generation's array grows past
    /// several resizes), deletes and recreations, compactions at random revisions and reloads: at
    /// every step the writer's question about the key it writes (its answer at the revision being
    /// written, as <c>WritePut</c> asks), and at checkpoints every key at every revision, its
    /// generations and what compaction keeps, equal the model's.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysWrittenManyTimesDeletedRecreatedAndCompactedAnswerAsEtcdsGenerations(int seed) =>
        RunAgainstTheModel(seed, keySpace: 40, hotKeys: 4, steps: 6_000, everyRevisionOfEveryKeyEvery: 500, puts: 78, deletes: 10, compactions: 5);

    /// <summary>
    /// The same steps over 4,000 keys written in random order, most of them once or twice (no hot
    /// keys): a key's second put is held in its chunk without a history object, so here those
    /// puts move with their keys through inserts in front of them, chunk splits (three chunks and
    /// more), removals by compaction, deletes (the key gets its object then), compactions at
    /// revisions between a key's two puts, and reloads — and every answer equals the model's.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysWrittenOnceOrTwiceAcrossChunkSplitsAnswerAsEtcdsGenerations(int seed) =>
        RunAgainstTheModel(seed, keySpace: 4_000, hotKeys: 0, steps: 9_000, everyRevisionOfEveryKeyEvery: 0, puts: 84, deletes: 8, compactions: 7);

    /// <summary>The steps, in percent: <paramref name="puts"/>, <paramref name="deletes"/>, <paramref name="compactions"/>, and reloads from histories the rest.</summary>
    private static void RunAgainstTheModel(int seed, int keySpace, int hotKeys, int steps, int everyRevisionOfEveryKeyEvery, int puts, int deletes, int compactions)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var index = new KeyIndex();
        var model = new Dictionary<int, ModelKey>();
        long main = 1;
        long compacted = 0;
        for (int step = 0; step < steps; step++)
        {
            // Skewed: a few hot keys get long live generations, the others a few revisions each.
            int k = hotKeys > 0 && random.Next(4) == 0 ? random.Next(hotKeys) : random.Next(keySpace);
            byte[] key = KeyOf(k);
            int choice = random.Next(100);
            if (choice < puts)
            {
                var revision = new Revision(++main, random.Next(5) == 0 ? 1 : 0);
                bool found = index.Find(key, out var position);
                Assert.That(found, Is.EqualTo(model.ContainsKey(k)), $"step {step}: key {k} found");

                // The writer's question before its put: the key at the revision being written.
                bool expectedLive = model.TryGetValue(k, out var modelKey) && modelKey.TryGet(revision.Main, out _, out _, out _);
                long expectedCreated = 0;
                long expectedVersion = 0;
                Revision expectedModified = default;
                if (expectedLive)
                {
                    modelKey!.TryGet(revision.Main, out expectedModified, out var created, out expectedVersion);
                    expectedCreated = created.Main;
                }

                bool live = found && index.TryGet(position, revision.Main, out var modified, out var createdAt, out long version)
                    && Check(expectedModified, expectedCreated, expectedVersion, modified, createdAt.Main, version, step, k);
                Assert.That(live, Is.EqualTo(expectedLive), $"step {step}: key {k} live before the put at {revision}");
                if (found)
                {
                    index.Put(position, revision);
                }
                else
                {
                    index.Add(position, key, revision);
                    model[k] = modelKey = new ModelKey();
                }

                modelKey!.Put(revision);
            }
            else if (choice < puts + deletes)
            {
                if (model.TryGetValue(k, out var modelKey) && modelKey.IsLive)
                {
                    var revision = new Revision(++main, 0);
                    Assert.That(index.Find(key, out var position), Is.True);
                    Assert.That(index.Tombstone(position, revision), Is.True, $"step {step}: delete of live key {k}");
                    modelKey.Tombstone(revision);
                }
            }
            else if (choice < puts + deletes + compactions)
            {
                long at = random.NextInt64(compacted, main + 1);
                var kept = new HashSet<Revision>();
                byte[]? from = [];
                while (from is not null)
                {
                    from = index.Compact(from, limit: 3, at, kept);
                }

                var modelKept = new HashSet<Revision>();
                foreach (var (mk, modelKey) in model.ToList())
                {
                    modelKey.Compact(at, modelKept);
                    if (modelKey.IsEmpty)
                    {
                        model.Remove(mk);
                    }
                }

                Assert.That(kept.OrderBy(r => r).ToList(), Is.EqualTo(modelKept.OrderBy(r => r).ToList()), $"step {step}: compaction at {at} keeps what etcd's rules keep");
                compacted = at;
            }
            else
            {
                // A reload from histories, as the open rebuilds the index.
                var histories = new List<KeyHistory>();
                foreach (var (mk, _) in model)
                {
                    Assert.That(index.Find(KeyOf(mk), out _), Is.True);
                    histories.Add(index.HistoryOf(KeyOf(mk))!);
                }

                index = new KeyIndex();
                index.Load(histories);
            }

            Assert.That(index.Count, Is.EqualTo(model.Count), $"step {step}: keys in the index");
            if (everyRevisionOfEveryKeyEvery > 0 && step % everyRevisionOfEveryKeyEvery == 0)
            {
                AssertEveryAnswer(index, model, main, step);
            }
            else if (everyRevisionOfEveryKeyEvery == 0 && step % 1_000 == 0)
            {
                AssertAnswersAroundEveryRevision(index, model, main, step);
            }
        }

        if (everyRevisionOfEveryKeyEvery > 0)
        {
            AssertEveryAnswer(index, model, main, step: -1);
        }
        else
        {
            AssertAnswersAroundEveryRevision(index, model, main, step: -1);
            Assert.That(index.Keys().Select(key => (key[1] << 8) | key[2]).ToList(), Is.EqualTo(model.Keys.Order().ToList()), "the index's keys, in order");
        }
    }

    /// <summary>
    /// For many keys: each key's generations and newest revision, and its answer at each of its
    /// revisions, just below each, at 0 and after the newest (where answers change), against the model's.
    /// </summary>
    private static void AssertAnswersAroundEveryRevision(KeyIndex index, Dictionary<int, ModelKey> model, long main, int step)
    {
        foreach (var (k, modelKey) in model)
        {
            var history = index.HistoryOf(KeyOf(k))!;
            Assert.That(Show(history.GenerationRevisions()), Is.EqualTo(Show(modelKey.Generations())), $"step {step}: key {k}'s generations");
            Assert.That(history.Modified, Is.EqualTo(modelKey.Modified), $"step {step}: key {k}'s newest revision");
            var points = new SortedSet<long> { 0, main + 1 };
            foreach (var generation in modelKey.Generations())
            {
                foreach (var revision in generation)
                {
                    points.Add(revision.Main);
                    points.Add(revision.Main - 1);
                }
            }

            foreach (long at in points)
            {
                bool expected = modelKey.TryGet(at, out var modified, out var created, out long version);
                bool actual = index.TryGet(KeyOf(k), at, out var gotModified, out var gotCreated, out long gotVersion);
                if ((actual, gotModified, gotCreated.Main, gotVersion) != (expected, modified, created.Main, version))
                {
                    Assert.Fail($"step {step}: key {k} at {at}: the index says {(actual, gotModified, gotCreated.Main, gotVersion)}, the model {(expected, modified, created.Main, version)}");
                }
            }
        }
    }

    private static bool Check(Revision expectedModified, long expectedCreated, long expectedVersion, Revision modified, long created, long version, int step, int k)
    {
        Assert.That((modified, created, version), Is.EqualTo((expectedModified, expectedCreated, expectedVersion)), $"step {step}: key {k}'s latest (modified, created, version) before a put");
        return true;
    }

    private static byte[] KeyOf(int k) => [(byte)'k', (byte)(k >> 8), (byte)k];

    private static void AssertEveryAnswer(KeyIndex index, Dictionary<int, ModelKey> model, long main, int step)
    {
        foreach (var (k, modelKey) in model)
        {
            var history = index.HistoryOf(KeyOf(k))!;
            Assert.That(Show(history.GenerationRevisions()), Is.EqualTo(Show(modelKey.Generations())), $"step {step}: key {k}'s generations");
            Assert.That(history.Modified, Is.EqualTo(modelKey.Modified), $"step {step}: key {k}'s newest revision");
            for (long at = 0; at <= main + 1; at++)
            {
                bool expected = modelKey.TryGet(at, out var modified, out var created, out long version);
                bool actual = index.TryGet(KeyOf(k), at, out var gotModified, out var gotCreated, out long gotVersion);
                if ((actual, gotModified, gotCreated.Main, gotVersion) != (expected, modified, created.Main, version))
                {
                    Assert.Fail($"step {step}: key {k} at {at}: the index says {(actual, gotModified, gotCreated.Main, gotVersion)}, the model {(expected, modified, created.Main, version)}");
                }
            }
        }
    }

    private static string Show(IEnumerable<IReadOnlyList<Revision>> generations) =>
        string.Join(" | ", generations.Select(g => string.Join(",", g)));

    /// <summary>
    /// etcd's <c>keyIndex</c> as plain lists (key_index.go): generations oldest first, the last one
    /// empty after a delete; a generation's version counts every put, compacted ones too.
    /// </summary>
    private sealed class ModelKey
    {
        private readonly List<ModelGeneration> _generations = [new()];

        public bool IsLive => _generations[^1].Revisions.Count > 0;

        public bool IsEmpty => _generations.Count == 1 && _generations[0].Revisions.Count == 0;

        public Revision Modified => _generations.LastOrDefault(g => g.Revisions.Count > 0)?.Revisions[^1] ?? default;

        public IEnumerable<IReadOnlyList<Revision>> Generations() => _generations.Select(g => (IReadOnlyList<Revision>)g.Revisions);

        public void Put(Revision revision)
        {
            var last = _generations[^1];
            if (last.Revisions.Count == 0)
            {
                last.Created = revision;
            }

            last.Revisions.Add(revision);
            last.Version++;
        }

        public void Tombstone(Revision revision)
        {
            Put(revision);
            _generations.Add(new ModelGeneration());
        }

        /// <summary>etcd's <c>keyIndex.get</c>: the generation alive at atMain (not ended at or before it), its last revision at or below atMain.</summary>
        public bool TryGet(long atMain, out Revision modified, out Revision created, out long version)
        {
            modified = default;
            created = default;
            version = 0;
            for (int g = _generations.Count - 1; g >= 0; g--)
            {
                var generation = _generations[g];
                if (generation.Revisions.Count == 0)
                {
                    continue;
                }

                if (g != _generations.Count - 1 && generation.Revisions[^1].Main <= atMain)
                {
                    return false;
                }

                if (generation.Revisions[0].Main <= atMain)
                {
                    int n = generation.Revisions.FindLastIndex(r => r.Main <= atMain);
                    modified = generation.Revisions[n];
                    created = generation.Created;
                    version = generation.Version - (generation.Revisions.Count - n - 1);
                    return true;
                }
            }

            return false;
        }

        /// <summary>etcd's <c>keyIndex.compact</c> / <c>doCompact</c>.</summary>
        public void Compact(long atMain, HashSet<Revision> available)
        {
            int g = 0;
            while (g < _generations.Count - 1 && _generations[g].Revisions[^1].Main <= atMain)
            {
                g++;
            }

            var generation = _generations[g];
            int n = generation.Revisions.FindLastIndex(r => r.Main <= atMain);
            if (n >= 0)
            {
                available.Add(generation.Revisions[n]);
            }

            if (generation.Revisions.Count > 0)
            {
                if (n >= 0)
                {
                    generation.Revisions.RemoveRange(0, n);
                }

                if (generation.Revisions.Count == 1 && g != _generations.Count - 1)
                {
                    available.Remove(generation.Revisions[0]);
                    g++;
                }
            }

            _generations.RemoveRange(0, g);
        }
    }

    private sealed class ModelGeneration
    {
        public Revision Created;
        public long Version;
        public readonly List<Revision> Revisions = [];
    }
}
