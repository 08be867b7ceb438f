using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// The durable log's in-memory table hands back, for every cached index, the entry appended at that
/// index — through appends across the cache ring's growth and wrap, truncations that replace a suffix,
/// compactions and evictions — and its cache stays the suffix it claims to be.
/// </summary>
public sealed class EntryTableCacheTests
{
    [Test]
    public void CachedEntriesAreTheOnesAppendedThroughTruncationsCompactionsAndEvictions([Values(1, 2, 3, 4)] int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var table = new EntryTable();
        table.Reset(0, 0);

        // The model: index -> (term, the data's first byte and length), and which indexes are cached.
        var model = new Dictionary<ulong, (ulong Term, byte Tag, int Length)>();
        ulong term = 1;
        long written = 0;
        for (int step = 0; step < 1_500; step++)
        {
            switch (random.Next(10))
            {
                case 0 when table.LastIndex > table.Offset:
                    // A new leader's entries replace a suffix: inside the cache, or from below it (which empties it).
                    ulong from = random.Next(2) == 0 && table.CacheFirst <= table.LastIndex
                        ? table.CacheFirst + (ulong)random.NextInt64((long)(table.LastIndex - table.CacheFirst) + 2)
                        : table.Offset + 1 + (ulong)random.NextInt64((long)(table.LastIndex - table.Offset) + 1);
                    table.TruncateFrom(from);
                    for (ulong i = from; model.Remove(i); i++)
                    {
                    }

                    term++;
                    break;
                case 1 when table.LastIndex > table.Offset:
                    ulong compactTo = table.Offset + (ulong)random.NextInt64((long)(table.LastIndex - table.Offset) + 1);
                    table.CompactTo(compactTo, compactTo == table.Offset ? table.OffsetTerm : model[compactTo].Term);
                    foreach (var gone in model.Keys.Where(i => i <= compactTo).ToList())
                    {
                        model.Remove(gone);
                    }

                    break;
                case 2:
                    // Everything written so far is durable; evict down to a random budget.
                    table.Evict(random.Next(0, 64 * 1024), 1L << 40, new WalPosition(0, written + 1), table.LastIndex);
                    break;
                default:
                    int n = random.Next(1, 700);
                    for (int k = 0; k < n; k++)
                    {
                        ulong index = table.LastIndex + 1;
                        int length = random.Next(1, 200);
                        byte tag = (byte)random.Next(256);
                        var data = new byte[length];
                        data.AsSpan().Fill(tag);
                        table.Append(new Entry(term, index, EntryType.Normal, data), new WalPosition(0, written++), cache: true);
                        model[index] = (term, tag, length);
                    }

                    break;
            }

            Assert.That(table.CacheFirst, Is.GreaterThan(table.Offset), $"seed {seed} step {step}: the cache starts inside the table");
            long bytes = 0;
            for (ulong index = table.Offset + 1; index <= table.LastIndex; index++)
            {
                var expected = model[index];
                Assert.That(table.TermAt(index), Is.EqualTo(expected.Term), $"seed {seed} step {step} index {index}");
                bool cached = table.TryGetCached(index, out var entry);
                Assert.That(cached, Is.EqualTo(index >= table.CacheFirst), $"seed {seed} step {step} index {index}: the cache is the suffix from {table.CacheFirst}");
                if (cached)
                {
                    Assert.That(entry.Index, Is.EqualTo(index), $"seed {seed} step {step}");
                    Assert.That(entry.Term, Is.EqualTo(expected.Term), $"seed {seed} step {step} index {index}");
                    Assert.That(entry.Data.Length, Is.EqualTo(expected.Length), $"seed {seed} step {step} index {index}");
                    Assert.That(entry.Data.Span[0], Is.EqualTo(expected.Tag), $"seed {seed} step {step} index {index}");
                    bytes += entry.EncodedSizeBytes;
                }
            }

            Assert.That(table.CachedBytes, Is.EqualTo(bytes), $"seed {seed} step {step}");
        }
    }
}
