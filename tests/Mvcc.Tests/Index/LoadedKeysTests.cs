using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Index;

/// <summary>
/// The keys an open gathers (<see cref="LoadedKeys"/>): a map of slot numbers with it as comparer
/// finds each key by its bytes, adds a new one with one probe, keeps every key's bytes whole while
/// the shared array and the slot arrays grow past what they were sized for, and the index loaded
/// from it holds exactly those keys in byte order.
/// </summary>
public sealed class LoadedKeysTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public void KeysAreFoundByTheirBytesAndKeptWholeAsTheArraysGrow(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);

        // Sized for 4 keys of 2 bytes: every array grows several times over.
        var keys = new LoadedKeys(capacity: 4, keyBytesEach: 2);
        var slots = new Dictionary<int, int>(4, keys);
        var lookup = slots.GetAlternateLookup<ReadOnlySpan<byte>>();
        var model = new Dictionary<string, int>();
        long main = 1;
        for (int step = 0; step < 3_000; step++)
        {
            var key = new byte[random.Next(1, 40)];
            random.NextBytes(key.AsSpan(0, 1)); // one random byte, then zeros: many repeats, and 8-byte prefix ties
            string name = Convert.ToHexString(key);
            bool added = keys.FindOrAdd(lookup, key, out int slot);
            Assert.That(added, Is.EqualTo(!model.ContainsKey(name)), $"step {step}: {name} added only when new");
            if (added)
            {
                keys.SetSingle(slot, new Revision(++main, 0));
                model[name] = slot;
            }

            Assert.That(slot, Is.EqualTo(model[name]), $"step {step}: {name}'s slot");
        }

        Assert.That(keys.Count, Is.EqualTo(model.Count));
        foreach (var (name, slot) in model)
        {
            Assert.That(Convert.ToHexString(keys.KeyAt(slot)), Is.EqualTo(name), $"slot {slot} keeps its key's bytes");
            Assert.That(lookup.TryGetValue(Convert.FromHexString(name), out int found) && found == slot, Is.True, $"{name} found by its bytes");
        }

        var index = new KeyIndex();
        index.Load(keys);
        Assert.That(index.Keys().Select(Convert.ToHexString), Is.EqualTo(model.Keys.Order(StringComparer.Ordinal)), "the loaded index holds the keys in byte order");
        foreach (var (name, slot) in model)
        {
            Assert.That(index.TryGet(Convert.FromHexString(name), main, out var modified, out _, out long version), Is.True);
            Assert.That((modified, version), Is.EqualTo((keys.SingleAt(slot), 1L)), $"{name} reads as its one put");
        }
    }
}
