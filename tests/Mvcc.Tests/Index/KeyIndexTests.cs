using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Index;

/// <summary>
/// The key index against a sorted model: keys added by one search (<see cref="KeyIndex.FindForInsert"/>
/// then <see cref="KeyIndex.Add"/>, as a put of a new key does) or by <see cref="KeyIndex.GetOrAdd"/>,
/// in order (appends past the last chunk), in reverse and at random (chunk splits), and removed
/// (as compaction does), keep byte-wise key order, and every key is found.
/// </summary>
public sealed class KeyIndexTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("MVCC_SEED", "MVCC_SOAK_SEEDS", first: 1, defaultCount: 3);

    [TestCaseSource(nameof(Seeds))]
    public void KeysAddedWithOneSearchOrByGetOrAddStayInByteOrderThroughSplitsAppendsAndRemovals(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; replay with MVCC_SEED={seed}");
        var random = new Random(seed);
        var index = new KeyIndex();
        var model = new SortedSet<byte[]>(ByteOrder.Instance);
        int nextInOrder = 0;
        for (int step = 0; step < 6_000; step++)
        {
            int choice = random.Next(10);
            if (choice < 2 && model.Count > 0)
            {
                // A removal, as a compaction that pruned a key's whole history.
                var victim = model.ElementAt(random.Next(model.Count));
                var history = index.Find(victim) ?? throw new AssertionException($"step {step}: {Show(victim)} is in the model but not found");
                index.Remove(history);
                model.Remove(victim);
                continue;
            }

            // In-order keys (a 0xFF lead byte sorts them after every random key) cross the chunk
            // size and take the append path; random keys of 1–12 bytes from a small alphabet share
            // prefixes, so 8-byte prefix ties are compared on whole keys.
            byte[] key = choice < 5
                ? [0xFF, (byte)(nextInOrder >> 16), (byte)(nextInOrder >> 8), (byte)nextInOrder++]
                : RandomKey(random);
            var found = index.FindForInsert(key, out var point);
            Assert.That(found is not null, Is.EqualTo(model.Contains(key)), $"step {step}: {Show(key)} found by FindForInsert");
            if (found is null)
            {
                var added = random.Next(2) == 0 ? index.Add(point, key) : index.GetOrAdd(key);
                Assert.That(added.Key, Is.EqualTo(key));
                Assert.That(added.IsEmpty, Is.True, "a new key's history is empty until its first put");
                model.Add(key);
            }
            else
            {
                Assert.That(index.GetOrAdd(key), Is.SameAs(found), $"step {step}: GetOrAdd of a present key returns its history");
            }
        }

        Assert.That(index.Count, Is.EqualTo(model.Count));
        Assert.That(index.All().Select(h => Show(h.Key)), Is.EqualTo(model.Select(Show)), "the index walks its keys in byte order");
        foreach (var key in model)
        {
            Assert.That(index.Find(key)?.Key, Is.EqualTo(key), $"{Show(key)} is found");
        }
    }

    [Test]
    public void AnInsertPointFoundBeforeTheIndexChangedIsRefusedAndChangesNothing()
    {
        var index = new KeyIndex();
        index.GetOrAdd([2]);
        Assert.That(index.FindForInsert([1], out var stale), Is.Null);
        index.GetOrAdd([3]);

        Assert.That(() => index.Add(stale, [1]), Throws.InstanceOf<InvariantViolationException>());
        Assert.That(index.All().Select(h => h.Key[0]), Is.EqualTo(new byte[] { 2, 3 }));

        Assert.That(index.FindForInsert([1], out var fresh), Is.Null);
        index.Add(fresh, [1]);
        Assert.That(index.All().Select(h => h.Key[0]), Is.EqualTo(new byte[] { 1, 2, 3 }));
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

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static ByteOrder Instance { get; } = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
