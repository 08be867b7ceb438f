using System.Text;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Index;

/// <summary>
/// The key index against independent models. Order: keys added by one search (<see cref="KeyIndex.Find"/>
/// then <see cref="KeyIndex.Add"/>, as a put of a new key does), in order (appends past the last
/// chunk), in reverse and at random (chunk splits), and removed (as compaction does), keep byte-wise
/// key order, and every key is found. Histories: a key written once is held without a
/// <see cref="KeyHistory"/> object; through puts, deletes, compactions and a reload it answers exactly
/// as a <see cref="KeyHistory"/> fed the same changes.
/// </summary>
public sealed class KeyIndexTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public void KeysAddedWithOneSearchStayInByteOrderThroughSplitsAppendsAndRemovals(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var index = new KeyIndex();
        var model = new SortedSet<byte[]>(ByteOrder.Instance);
        int nextInOrder = 0;
        long main = 1;
        for (int step = 0; step < 6_000; step++)
        {
            int choice = random.Next(10);
            if (choice < 2 && model.Count > 0)
            {
                // A removal, as a compaction that pruned a key's whole history.
                var victim = model.ElementAt(random.Next(model.Count));
                index.Remove(victim);
                model.Remove(victim);
                continue;
            }

            // In-order keys (a 0xFF lead byte sorts them after every random key) cross the chunk
            // size and take the append path; random keys of 1–12 bytes from a small alphabet share
            // prefixes, so 8-byte prefix ties are compared on whole keys.
            byte[] key = choice < 5
                ? [0xFF, (byte)(nextInOrder >> 16), (byte)(nextInOrder >> 8), (byte)nextInOrder++]
                : RandomKey(random);
            bool found = index.Find(key, out var position);
            Assert.That(found, Is.EqualTo(model.Contains(key)), $"step {step}: {Show(key)} found by Find");
            if (!found)
            {
                var revision = new Revision(++main, 0);
                index.Add(position, key, revision);
                Assert.That(index.TryGet(key, main, out var modified, out var created, out long version), Is.True);
                Assert.That((modified, created, version), Is.EqualTo((revision, revision, 1L)), $"step {step}: a new key reads as its one put");
                model.Add(key);
            }
        }

        Assert.That(index.Count, Is.EqualTo(model.Count));
        Assert.That(index.Keys().Select(Show), Is.EqualTo(model.Select(Show)), "the index walks its keys in byte order");
        foreach (var key in model)
        {
            Assert.That(index.Find(key, out _), Is.True, $"{Show(key)} is found");
        }
    }

    /// <summary>
    /// Keys that share long prefixes (as etcd's <c>/registry/pods/...</c> and store-load's keys do),
    /// which the index skips before it compares numbers: rests of 0–11 bytes of 0x00, 0x01 and 'a'
    /// after them (so zero padding ties and keys that are prefixes of others), a few keys that share
    /// less or nothing (so the shared bytes shrink), added in order, in reverse and at random,
    /// removed, and reloaded: every key is found, absent keys are not, and ranges from any key walk
    /// exactly the model's keys in byte order.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysSharingLongPrefixesAreFoundAndWalkedInByteOrderThroughSplitsRemovalsAndReloads(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        byte[][] stems = ["/registry/pods/default/"u8.ToArray(), "/registry/pods/"u8.ToArray(), "/registry/"u8.ToArray(), "/store-load/0"u8.ToArray()];
        byte[] RandomSharingKey()
        {
            if (random.Next(50) == 0)
            {
                // Shares little or nothing with the rest.
                return RandomKey(random);
            }

            var stem = stems[random.Next(stems.Length)];
            var rest = new byte[random.Next(0, 12)];
            for (int i = 0; i < rest.Length; i++)
            {
                rest[i] = random.Next(3) switch { 0 => 0x00, 1 => 0x01, _ => (byte)'a' };
            }

            return [.. stem, .. rest];
        }

        int descending = 1_000_000;
        AddFindRemoveAndReloadAgainstModel(random, steps: 6_000, RandomSharingKey, choice => choice < 8
            // Descending keys under one stem: inserts before a chunk's first key.
            ? [.. "/store-load/0"u8, .. System.Text.Encoding.ASCII.GetBytes((descending--).ToString("D7", System.Globalization.CultureInfo.InvariantCulture))]
            : RandomSharingKey());
    }

    /// <summary>
    /// A chunk narrows each lookup by every 8th key's prefix (its summary) before it searches: keys
    /// whose 8-byte prefixes after the shared bytes tie (runs of 0xFF, so also the largest prefix,
    /// all ones, which the summary's unused slots hold too), in order and at random, through splits
    /// and removals that move chunk sizes across multiples of 8: after every change a present key
    /// and an absent one are looked up, and every 250 changes every key is found and the index
    /// walks the model's keys in byte order.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void LookupsNarrowedByEachChunksSampledPrefixesFindEveryKeyThroughTiesSplitsAndRemovals(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        byte[] TiedKey() => NewTiedKey(random);

        var index = new KeyIndex();
        var model = new SortedSet<byte[]>(ByteOrder.Instance);
        long main = 1;
        int inOrder = 0;
        for (int step = 0; step < 8_000; step++)
        {
            int choice = random.Next(8);
            if (choice < 2 && model.Count > 0)
            {
                var victim = model.ElementAt(random.Next(model.Count));
                index.Remove(victim);
                model.Remove(victim);
            }
            else
            {
                byte[] key = choice < 4 ? [.. "/k/"u8, (byte)(inOrder >> 8), (byte)inOrder++] : TiedKey();
                if (!index.Find(key, out var position))
                {
                    index.Add(position, key, new Revision(++main, 0));
                    model.Add(key);
                }
            }

            if (model.Count > 0)
            {
                var present = model.ElementAt(random.Next(model.Count));
                Assert.That(index.Find(present, out _), Is.True, $"step {step}: {Show(present)} is in the index but not found");
            }

            var probe = TiedKey();
            Assert.That(index.Find(probe, out _), Is.EqualTo(model.Contains(probe)), $"step {step}: Find({Show(probe)})");
            if (step % 250 == 0)
            {
                AssertSameKeysAndRanges(index, model, TiedKey, step);
            }
        }

        AssertSameKeysAndRanges(index, model, TiedKey, step: -1);
    }

    /// <summary>
    /// A chunk copies only a key's bytes past the 8 its prefix holds (its tail): rests (the bytes
    /// after what a chunk's keys share) of 0–20 bytes, so of lengths on both sides of 8 and at it,
    /// of 0x00, 0x01 and 0xFF (keys that are prefixes of others, padding ties, tails that tie),
    /// under stems of several lengths (the shared bytes shrink and grow through adds and splits,
    /// which take every rest's prefix and tail again), a few keys of 100–300 bytes (put together
    /// off the stack), added in order, in reverse and at random, removed and reloaded: every key is
    /// found and read back whole, absent keys are not found, and ranges walk the model's keys.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysWhoseRestsEndBeforeAtAndPastTheirPrefixAreFoundAndReadBackWholeThroughSplitsRemovalsAndReloads(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        byte[][] stems = [[], "/a/"u8.ToArray(), "/a/bcdefgh/"u8.ToArray(), "/a/bcdefgh/ijklmnop/"u8.ToArray()];
        byte[] Bytes(int length)
        {
            var bytes = new byte[length];
            for (int i = 0; i < length; i++)
            {
                bytes[i] = random.Next(3) switch { 0 => 0x00, 1 => 0x01, _ => 0xFF };
            }

            return bytes;
        }

        byte[] RestKey()
        {
            var stem = stems[random.Next(stems.Length)];
            int length = random.Next(8) switch { 0 => random.Next(0, 21), 1 => random.Next(100, 301), _ => random.Next(6, 11) };

            // Mostly a run of 0xFF first, so rests tie on their prefixes and order falls to lengths and tails.
            var rest = Bytes(length);
            int run = random.Next(0, 10);
            for (int i = 0; i < Math.Min(run, rest.Length); i++)
            {
                rest[i] = 0xFF;
            }

            return [.. stem, .. rest];
        }

        int inOrder = 0;
        int descending = 1 << 20;
        AddFindRemoveAndReloadAgainstModel(random, steps: 8_000, RestKey, choice =>
        {
            if (choice < 7)
            {
                // In order under one stem, with a random tail of 0–4 bytes: rests of 3–7 bytes, then 8–11.
                int n = inOrder++;
                return [.. "/a/bcdefgh/"u8, (byte)(n >> 16), (byte)(n >> 8), (byte)n, .. Bytes(random.Next(0, 5)), .. (n % 3 == 0 ? Bytes(4) : [])];
            }

            if (choice < 10)
            {
                // Descending: inserts before a chunk's first key, whose shared bytes then shrink.
                int n = descending--;
                return [.. "/a/"u8, (byte)(n >> 16), (byte)(n >> 8), (byte)n, .. Bytes(random.Next(4, 8))];
            }

            return RestKey();
        });
    }

    /// <summary>
    /// The model loop of the key-layout tests: each step removes a random present key (3 in 20),
    /// reloads the index from the model (1 in 20), or looks up the key <paramref name="keyFor"/> makes
    /// for the step's draw (4–19) and adds it when absent, Find checked against the model; every 500
    /// steps and at the end the index holds exactly the model's keys and answers its ranges (probed
    /// with <paramref name="probeKey"/>).
    /// </summary>
    private static void AddFindRemoveAndReloadAgainstModel(Random random, int steps, Func<byte[]> probeKey, Func<int, byte[]> keyFor)
    {
        var index = new KeyIndex();
        var model = new SortedSet<byte[]>(ByteOrder.Instance);
        long main = 1;
        for (int step = 0; step < steps; step++)
        {
            int choice = random.Next(20);
            if (choice < 3 && model.Count > 0)
            {
                var victim = model.ElementAt(random.Next(model.Count));
                index.Remove(victim);
                model.Remove(victim);
                continue;
            }

            if (choice == 3)
            {
                index = new KeyIndex();
                index.Load(model.Select(k => SinglePut(k, ++main)).ToList());
                continue;
            }

            byte[] key = keyFor(choice);

            bool found = index.Find(key, out var position);
            Assert.That(found, Is.EqualTo(model.Contains(key)), $"step {step}: {Show(key)} found by Find");
            if (!found)
            {
                index.Add(position, key, new Revision(++main, 0));
                model.Add(key);
            }

            if (step % 500 == 0)
            {
                AssertSameKeysAndRanges(index, model, probeKey, step);
            }
        }

        AssertSameKeysAndRanges(index, model, probeKey, step: -1);
    }

    /// <summary>
    /// An entry holds a rest's length in 16 bits; a rest of 65,535 bytes or more keeps its length
    /// where the one put was and its key gets a history object. Keys that share a 65,530-byte stem
    /// (rests of 0–12 bytes), with keys that share nothing arriving now and then (the chunk's shared
    /// bytes shrink and every stem key's rest becomes long, 65,530–65,542 bytes: across the limit
    /// while it holds its one put), at random (splits, which make rests short again), written again,
    /// deleted, removed and reloaded: every key is found, reads back whole and answers at every
    /// revision exactly as a <see cref="KeyHistory"/> fed the same changes.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysWhoseRestsCrossTheLongRestLimitKeepTheirBytesAndAnswers(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var stem = new byte[65_530];
        Array.Fill(stem, (byte)'s');
        byte[] NewKey()
        {
            if (random.Next(40) == 0)
            {
                return RandomKey(random);
            }

            var rest = new byte[random.Next(0, 13)];
            random.NextBytes(rest);
            return [.. stem, .. rest];
        }

        var index = new KeyIndex();
        var model = new SortedDictionary<byte[], KeyHistory>(ByteOrder.Instance);
        long main = 1;
        for (int step = 0; step < 1_500; step++)
        {
            int choice = random.Next(20);
            if (choice == 0 && model.Count > 0)
            {
                var victim = model.Keys.ElementAt(random.Next(model.Count));
                index.Remove(victim);
                model.Remove(victim);
                continue;
            }

            if (choice == 1)
            {
                index = new KeyIndex();
                index.Load(model.Values.Select(Copy).ToList());
                continue;
            }

            var key = choice < 4 && model.Count > 0 ? model.Keys.ElementAt(random.Next(model.Count)) : NewKey();
            var revision = new Revision(++main, 0);
            bool found = index.Find(key, out var position);
            Assert.That(found, Is.EqualTo(model.ContainsKey(key)), $"step {step}: a key of {key.Length} bytes found by Find");
            if (!found)
            {
                index.Add(position, key, revision);
                var history = new KeyHistory(key);
                history.Put(revision);
                model[key] = history;
            }
            else if (choice == 2 && model[key].IsLive)
            {
                Assert.That(index.Tombstone(position, revision), Is.True);
                model[key].Tombstone(revision);
            }
            else
            {
                index.Put(position, revision);
                model[key].Put(revision);
            }

            if (step % 300 == 0)
            {
                AssertSameKeysAndHistories(index, model, step);
            }
        }

        AssertSameKeysAndHistories(index, model, step: -1);
    }

    private static void AssertSameKeysAndHistories(KeyIndex index, SortedDictionary<byte[], KeyHistory> model, int step)
    {
        Assert.That(index.Count, Is.EqualTo(model.Count), $"step {step}: keys in the index");
        Assert.That(index.Keys().SequenceEqual(model.Keys, new KeyBytesComparer()), Is.True, $"step {step}: the index walks its keys, whole, in byte order");
        foreach (var (key, history) in model)
        {
            var held = index.HistoryOf(key);
            Assert.That(held, Is.Not.Null, $"step {step}: a key of {key.Length} bytes is in the index but not found");
            if (Show(held!) != Show(history))
            {
                Assert.Fail($"step {step}: a key of {key.Length} bytes: generations in the index {Show(held!)}, in its history {Show(history)}");
            }
        }
    }

    /// <summary>
    /// In-order keys whose rests (bytes past what their chunk's keys share) end within their 8-byte
    /// prefixes have no tails, so the chunks appended for them reserve no key array (issue 15's
    /// memory per key); keys with long rests appended into such a chunk later grow one, and every
    /// key is still found and read back whole, in order, and through a reload.
    /// </summary>
    [Test]
    public void ChunksAppendedForKeysWithoutTailsReserveNoKeyBytesAndGrowThemForLongerKeys()
    {
        var index = new KeyIndex();
        var model = new SortedSet<byte[]>(ByteOrder.Instance);
        long main = 1;
        void AddInOrder(byte[] key)
        {
            Add(index, key, ++main);
            model.Add(key);
        }

        // 16-byte keys as the in-order put row's: a chunk's keys share 13–14 bytes, their rests are 2–3.
        for (int i = 0; i < 512; i++)
        {
            AddInOrder(Encoding.ASCII.GetBytes($"key/{i:D12}"));
        }

        long firstChunk = index.TailBytesCapacity;
        for (int i = 512; i < 2_000; i++)
        {
            AddInOrder(Encoding.ASCII.GetBytes($"key/{i:D12}"));
        }

        Assert.That(index.TailBytesCapacity, Is.EqualTo(firstChunk), "the chunks appended after the first reserve no bytes for tails");

        // Rests of 25 bytes and more appended into the last chunk (it holds 464 short keys): its key array grows from nothing.
        for (int i = 2_000; i < 2_100; i++)
        {
            AddInOrder(Encoding.ASCII.GetBytes($"key/{i:D12}/and a longer suffix {i}"));
        }

        Assert.That(index.TailBytesCapacity, Is.GreaterThan(firstChunk), "longer rests have their tails stored");
        AssertKeysFoundAndWalked(index, model);

        var reloaded = new KeyIndex();
        reloaded.Load(model.Select(key => SinglePut(key, FindMain(index, key))).ToList());
        AssertKeysFoundAndWalked(reloaded, model);

        static void AssertKeysFoundAndWalked(KeyIndex index, SortedSet<byte[]> model)
        {
            Assert.That(index.Keys().Select(Show), Is.EqualTo(model.Select(Show)), "every key read back whole, in byte order");
            foreach (var key in model)
            {
                Assert.That(index.Find(key, out _), Is.True, $"{Show(key)} is found");
            }

            Assert.That(index.Find(Encoding.ASCII.GetBytes("key/000000001999/"), out _), Is.False, "a key never added is not found");
        }
    }

    [Test]
    public void APositionFoundBeforeTheIndexChangedIsRefusedAndChangesNothing()
    {
        var index = new KeyIndex();
        Add(index, [2], 2);
        Assert.That(index.Find([1], out var staleInsert), Is.False);
        Assert.That(index.Find([2], out var stalePut), Is.True);
        Add(index, [3], 3);

        Assert.That(() => index.Add(staleInsert, [1], new Revision(4, 0)), Throws.InstanceOf<InvariantViolationException>());
        Assert.That(() => index.Put(stalePut, new Revision(4, 0)), Throws.InstanceOf<InvariantViolationException>());
        Assert.That(() => index.Tombstone(stalePut, new Revision(4, 0)), Throws.InstanceOf<InvariantViolationException>());
        Assert.That(index.Keys().Select(k => k[0]), Is.EqualTo(new byte[] { 2, 3 }));
        Assert.That(index.HistoryOf([2])!.GenerationRevisions().Single(), Is.EqualTo(new[] { new Revision(2, 0) }), "the refused put and delete changed nothing");

        Assert.That(index.Find([1], out var fresh), Is.False);
        index.Add(fresh, [1], new Revision(4, 0));
        Assert.That(index.Keys().Select(k => k[0]), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    /// <summary>
    /// Random puts, deletes and compactions over a few keys (many written once, so held without a
    /// history object, some written again or deleted, so given one), with a reload of the index from
    /// histories at random points (as the open does): every key reads at every revision, and
    /// compaction keeps, exactly what <see cref="KeyHistory"/> objects fed the same changes do.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysHeldWithoutAHistoryObjectAnswerAsTheirKeyHistoryThroughPutsDeletesCompactionsAndReloads(int seed) =>
        RunAgainstKeyHistories(seed, keySpace: 64, steps: 1_500, checkEvery: 150, revisionsChecked: int.MaxValue);

    /// <summary>
    /// As <see cref="KeysHeldWithoutAHistoryObjectAnswerAsTheirKeyHistoryThroughPutsDeletesCompactionsAndReloads"/>
    /// over thousands of keys, so chunks split, shift and lose keys while some of their keys have a
    /// history object (held in the chunk's separate array, moved with the entries) and others not.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysWithAndWithoutHistoryObjectsKeepTheirAnswersThroughSplitsShiftsAndRemovals(int seed) =>
        RunAgainstKeyHistories(seed, keySpace: 4_000, steps: 8_000, checkEvery: 2_000, revisionsChecked: 40);

    /// <summary>
    /// An entry holds a key's one put in 48 bits (main revision below 2^40, sub below 2^8): main
    /// revisions that cross 2^40 during the run and subs of 255 (the largest that fits) and 256–258
    /// now and then, so keys whose one put does not fit get a history object at their add, their
    /// reload or their split: every key answers exactly as a <see cref="KeyHistory"/> fed the same
    /// changes, on both sides of the limit.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void KeysWhoseOnePutDoesNotFitAnEntryAnswerAsTheirKeyHistory(int seed) =>
        RunAgainstKeyHistories(seed, keySpace: 2_000, steps: 4_000, checkEvery: 1_000, revisionsChecked: 40, firstMain: (1L << 40) - 2_000, largeSubs: true);

    /// <summary>
    /// <see cref="KeyIndex.TryGetMany"/> (a read batch's lookups, their misses overlapped) answers
    /// each key exactly as <see cref="KeyIndex.TryGet(ReadOnlySpan{byte}, long, out Revision, out Revision, out long)"/>
    /// alone: batches of 1–100 keys, present and absent, tied on their 8 bytes after what a chunk's
    /// keys share, before the first key and after the last, some looked up twice in one batch, each at
    /// its own revision (before, between and after their writes), through in-order appends, random
    /// inserts (splits), puts and deletes (keys with history objects), removals, a reload, and an empty index.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public void BatchedLookupsAnswerEachKeyAsALookupAloneThroughTiesSplitsHistoriesAndRemovals(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        byte[] TiedKey() => NewTiedKey(random);

        var index = new KeyIndex();
        var model = new SortedSet<byte[]>(ByteOrder.Instance);
        long main = 0;
        int inOrder = 0;
        AssertBatchesAnswerAsLookupsAlone(index, model, TiedKey, random, main, step: -2);
        for (int step = 0; step < 6_000; step++)
        {
            int choice = random.Next(10);
            if (choice < 2 && model.Count > 0)
            {
                var victim = model.ElementAt(random.Next(model.Count));
                index.Remove(victim);
                model.Remove(victim);
            }
            else if (choice < 4 && model.Count > 0)
            {
                // A put or delete of a key there: it gets a history object.
                var key = model.ElementAt(random.Next(model.Count));
                Assert.That(index.Find(key, out var position), Is.True);
                if (random.Next(3) == 0)
                {
                    index.Tombstone(position, new Revision(++main, 0));
                }
                else
                {
                    index.Put(position, new Revision(++main, random.Next(2)));
                }
            }
            else
            {
                byte[] key = choice < 7 ? [.. "/k/"u8, (byte)(inOrder >> 8), (byte)inOrder++] : TiedKey();
                if (!index.Find(key, out var position))
                {
                    index.Add(position, key, new Revision(++main, 0));
                    model.Add(key);
                }
            }

            if (step % 100 == 0)
            {
                AssertBatchesAnswerAsLookupsAlone(index, model, TiedKey, random, main, step);
            }

            if (step == 3_000)
            {
                // A reload, as the open rebuilds the index: chunks cut as a bulk load cuts them.
                var histories = model.Select(k => index.HistoryOf(k)!).ToList();
                index = new KeyIndex();
                index.Load(histories);
            }
        }

        AssertBatchesAnswerAsLookupsAlone(index, model, TiedKey, random, main, step: -1);
    }

    private static void AssertBatchesAnswerAsLookupsAlone(KeyIndex index, SortedSet<byte[]> model, Func<byte[]> probe, Random random, long main, int step)
    {
        for (int batch = 0; batch < 10; batch++)
        {
            int n = random.Next(1, 101);
            var keys = new ReadOnlyMemory<byte>[n];
            var atMain = new long[n];
            for (int i = 0; i < n; i++)
            {
                int kind = random.Next(8);
                keys[i] = kind switch
                {
                    < 3 when model.Count > 0 => model.ElementAt(random.Next(model.Count)),
                    3 => "/a"u8.ToArray(),
                    4 => "/z"u8.ToArray(),
                    5 when i > 0 => keys[random.Next(i)],
                    _ => probe(),
                };
                atMain[i] = random.NextInt64(0, main + 2);
            }

            var found = new bool[n];
            var modified = new Revision[n];
            index.TryGetMany(keys, atMain, found, modified);
            for (int i = 0; i < n; i++)
            {
                bool alone = index.TryGet(keys[i].Span, atMain[i], out var aloneModified, out _, out _);
                if ((found[i], modified[i]) != (alone, aloneModified))
                {
                    Assert.Fail($"step {step}, batch of {n}: key {i} {Show(keys[i].ToArray())} at {atMain[i]}: batched {(found[i], modified[i])}, alone {(alone, aloneModified)}");
                }
            }
        }
    }

    private static byte[] KeyOf(int k) => [(byte)(k >> 8), (byte)k, (byte)(k * 7)];

    private static void RunAgainstKeyHistories(int seed, int keySpace, int steps, int checkEvery, int revisionsChecked, long firstMain = 1, bool largeSubs = false)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var index = new KeyIndex();
        var model = new Dictionary<int, KeyHistory>();
        long main = firstMain;
        long compacted = firstMain - 1;
        for (int step = 0; step < steps; step++)
        {
            int k = random.Next(keySpace);
            byte[] key = KeyOf(k);
            int choice = random.Next(100);
            if (choice < 70)
            {
                // A put (a txn's second change now and then: sub revision 1).
                var revision = new Revision(++main, random.Next(4) != 0 ? 0 : largeSubs && random.Next(2) == 0 ? 255 + random.Next(4) : 1);
                bool found = index.Find(key, out var position);
                Assert.That(found, Is.EqualTo(model.ContainsKey(k)), $"step {step}: key {k} found");
                if (found)
                {
                    index.Put(position, revision);
                    model[k].Put(revision);
                }
                else
                {
                    index.Add(position, key, revision);
                    var history = new KeyHistory(key);
                    history.Put(revision);
                    model[k] = history;
                }
            }
            else if (choice < 85)
            {
                // A delete: only of a live key, as the store's delete of what a range found.
                if (model.TryGetValue(k, out var history) && history.IsLive)
                {
                    var revision = new Revision(++main, 0);
                    Assert.That(index.Find(key, out var position), Is.True);
                    Assert.That(index.Tombstone(position, revision), Is.True, $"step {step}: delete of live key {k}");
                    Assert.That(history.Tombstone(revision), Is.True);
                }
            }
            else if (choice < 95)
            {
                // A compaction in steps of a few keys, as the writer's; emptied keys leave the index.
                long at = random.NextInt64(compacted, main + 1);
                var kept = new HashSet<Revision>();
                var wouldKeep = new HashSet<Revision>();
                index.Keep(at, wouldKeep);
                byte[]? from = [];
                while (from is not null)
                {
                    from = index.Compact(from, limit: 5, at, kept);
                }

                var modelKept = new HashSet<Revision>();
                foreach (var (mk, history) in model.ToList())
                {
                    history.Compact(at, modelKept);
                    if (history.IsEmpty)
                    {
                        model.Remove(mk);
                    }
                }

                // Set equality in linear time (NUnit's EquivalentTo compares every pair: thousands of revisions here).
                Assert.That(kept.SetEquals(modelKept), Is.True, $"step {step}: compaction at {at} keeps what the histories keep ({kept.Count} vs {modelKept.Count} revisions)");
                Assert.That(wouldKeep.SetEquals(modelKept), Is.True, $"step {step}: Keep at {at} says what compaction keeps ({wouldKeep.Count} vs {modelKept.Count} revisions)");
                compacted = at;
            }
            else
            {
                // A reload, as the open rebuilds the index from the file's histories.
                index = new KeyIndex();
                index.Load(model.Values.Select(Copy).ToList());
            }

            Assert.That(index.Count, Is.EqualTo(model.Count), $"step {step}: keys in the index");
            if (step % checkEvery == 0)
            {
                AssertSameAnswers(index, model, firstMain, main, step, revisionsChecked);
            }
        }

        AssertSameAnswers(index, model, firstMain, main, step: -1, revisionsChecked);
    }

    /// <summary>Every key's answers at revisions from <paramref name="firstMain"/> (the run's first) to one past <paramref name="main"/>.</summary>
    private static void AssertSameAnswers(KeyIndex index, Dictionary<int, KeyHistory> model, long firstMain, long main, int step, int revisionsChecked)
    {
        long span = main + 2 - firstMain;
        long revisionStep = Math.Max(1, span / Math.Min(revisionsChecked, span));
        foreach (var (k, history) in model)
        {
            byte[] key = KeyOf(k);
            string held = Show(index.HistoryOf(key)!);
            if (held != Show(history))
            {
                Assert.Fail($"step {step}: key {k}'s generations in the index {held}, in its history {Show(history)}");
            }

            // Every revision, or every revisionStep-th and always the last (main + 1).
            for (long at = firstMain; at <= main + 1; at += at <= main ? Math.Min(revisionStep, main + 1 - at) : 1)
            {
                bool expected = history.TryGet(at, out var modified, out var created, out long version);
                bool actual = index.TryGet(key, at, out var gotModified, out var gotCreated, out long gotVersion);
                if ((actual, gotModified, gotCreated.Main, gotVersion) != (expected, modified, created.Main, version))
                {
                    Assert.Fail($"step {step}: key {k} at {at}: the index says {(actual, gotModified, gotCreated.Main, gotVersion)}, its history {(expected, modified, created.Main, version)}");
                }
            }
        }

        // A range over every key sees, at each revision, exactly the keys that existed then.
        for (long at = firstMain; at <= main + 1; at += Math.Max(1, span / 20))
        {
            var visited = new List<Revision>();
            index.Visit([0], [0], at, modified =>
            {
                visited.Add(modified);
                return true;
            });
            var expected = model.OrderBy(e => e.Key).Select(e => e.Value.TryGet(at, out var m, out _, out _) ? m : (Revision?)null).OfType<Revision>();
            Assert.That(visited, Is.EqualTo(expected), $"step {step}: range at {at}");
        }
    }

    private static void AssertSameKeysAndRanges(KeyIndex index, SortedSet<byte[]> model, Func<byte[]> probe, int step)
    {
        Assert.That(index.Count, Is.EqualTo(model.Count), $"step {step}: keys in the index");
        Assert.That(index.Keys().Select(Show), Is.EqualTo(model.Select(Show)), $"step {step}: the index walks its keys in byte order");
        foreach (var key in model)
        {
            if (!index.Find(key, out _))
            {
                Assert.Fail($"step {step}: {Show(key)} is in the index but not found");
            }
        }

        for (int i = 0; i < 200; i++)
        {
            var from = probe();
            if (index.Find(from, out _) != model.Contains(from))
            {
                Assert.Fail($"step {step}: Find({Show(from)}) says {!model.Contains(from)}");
            }

            // Every key >= from (a range end of the byte 0), in order.
            var walked = new List<long>();
            index.Visit(from, [0], long.MaxValue, modified =>
            {
                walked.Add(modified.Main);
                return walked.Count < 5;
            });
            var expected = model.Where(k => ByteOrder.Instance.Compare(k, from) >= 0).Take(5).Select(k => FindMain(index, k));
            Assert.That(walked, Is.EqualTo(expected), $"step {step}: the first keys >= {Show(from)}");
        }
    }

    private static long FindMain(KeyIndex index, byte[] key)
    {
        Assert.That(index.TryGet(key, long.MaxValue, out var modified, out _, out _), Is.True);
        return modified.Main;
    }

    private static KeyHistory SinglePut(byte[] key, long main)
    {
        var history = new KeyHistory(key);
        history.Put(new Revision(main, 0));
        return history;
    }

    private static string Show(KeyHistory history) => string.Join("|", history.GenerationRevisions().Select(g => string.Join(",", g)));

    private static KeyHistory Copy(KeyHistory history)
    {
        // The open restores each key from its stored revisions: the first with its stored create
        // revision and version, the later ones as puts (tombstones end generations).
        var copy = new KeyHistory(history.Key);
        bool first = true;
        var generations = history.GenerationRevisions();
        for (int g = 0; g < generations.Count; g++)
        {
            for (int i = 0; i < generations[g].Length; i++)
            {
                var revision = generations[g][i];
                bool tombstone = g < generations.Count - 1 && i == generations[g].Length - 1;
                if (first)
                {
                    history.TryGet(revision.Main, out _, out var created, out long version);
                    copy.Restore(created, revision, version);
                    first = false;
                }
                else if (tombstone)
                {
                    copy.Tombstone(revision);
                }
                else
                {
                    copy.Put(revision);
                }
            }
        }

        return copy;
    }

    private static void Add(KeyIndex index, byte[] key, long main)
    {
        Assert.That(index.Find(key, out var position), Is.False);
        index.Add(position, key, new Revision(main, 0));
    }

    private static byte[] RandomKey(Random random)
    {
        var key = new byte[random.Next(1, 13)];
        for (int i = 0; i < key.Length; i++)
        {
            key[i] = (byte)random.Next(0x61, 0x64);
        }

        return key;
    }

    private static string Show(byte[] key) => Convert.ToHexString(key);

    /// <summary>
    /// "/k/", 0–11 bytes of 0xFF, then 0–3 of 0x00, 0x01, 0xFF: many keys share their first 8 bytes
    /// after what a chunk's keys share, so order falls to their lengths and bytes.
    /// </summary>
    private static byte[] NewTiedKey(Random random)
    {
        var rest = new byte[random.Next(0, 12) + random.Next(0, 4)];
        int run = random.Next(0, 12);
        for (int i = 0; i < rest.Length; i++)
        {
            rest[i] = i < run ? (byte)0xFF : (byte)(random.Next(3) switch { 0 => 0x00, 1 => 0x01, _ => 0xFF });
        }

        return [.. "/k/"u8, .. rest];
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static ByteOrder Instance { get; } = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
