using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>The watched-range index finds exactly the ranges a naive scan finds, through random adds and removes.</summary>
public sealed class RangeTreeTests
{
    [Test]
    public void StabbingFindsExactlyTheRangesThatHoldTheKey()
    {
        foreach (int seed in TestSeeds.Choose("WATCH_SEED", "WATCH_SOAK_SEEDS", first: 1, defaultCount: 5))
        {
            TestContext.Out.WriteLine($"seed {seed}; replay with WATCH_SEED={seed}");
            var random = new Random(seed);
            var tree = new RangeTree();
            var naive = new List<WatcherGroup>();
            byte[] RandomKey() => [.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => (byte)random.Next(97, 103))];
            for (int step = 0; step < 3_000; step++)
            {
                if (naive.Count > 0 && random.Next(3) == 0)
                {
                    var victim = naive[random.Next(naive.Count)];
                    tree.Remove(victim);
                    naive.Remove(victim);
                }
                else
                {
                    var start = RandomKey();
                    byte[]? end = random.Next(6) == 0 ? null : RandomKey();
                    if (end is not null && end.AsSpan().SequenceCompareTo(start) <= 0)
                    {
                        continue;
                    }

                    var group = tree.GetOrAdd(start, end);
                    if (!naive.Contains(group))
                    {
                        naive.Add(group);
                    }
                }

                Assert.That(tree.Count, Is.EqualTo(naive.Count), $"seed {seed} step {step}: distinct ranges");
                var key = RandomKey();
                var found = new List<WatcherGroup>();
                tree.Stab(key, found);
                var expected = naive.Where(g => key.AsSpan().SequenceCompareTo(g.Key) >= 0 && (g.End is null || key.AsSpan().SequenceCompareTo(g.End) < 0)).ToList();
                if (found.Count != expected.Count || !new HashSet<WatcherGroup>(found).SetEquals(expected))
                {
                    Assert.Fail($"seed {seed} step {step}: the tree found {found.Count} ranges holding the key, a scan {expected.Count}");
                }
            }
        }
    }
}
