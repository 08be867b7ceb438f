using System.Buffers.Binary;
using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// <see cref="Bucket.PutBorrowingValue"/> (the MVCC store's puts: the transaction keeps the caller's value
/// memory instead of a copy) writes the same tree as <see cref="Bucket.Put"/>: the same answers inside the
/// transaction, and after the commits the same tree — the same entries, pages, depth and file size, and a clean
/// <see cref="BTreeDatabase.Check"/> — for in-order appends (the leaf in entry mode), random keys, replaced keys,
/// inline and overflow values. (Not the same bytes: a page's free space holds whatever its pooled buffer held.)
/// </summary>
public class BorrowedValueTests
{
    [TestCaseSource(nameof(BorrowSeeds))]
    public void PutsThatBorrowTheirValuesWriteTheSameTreeAsPutsThatCopyThem(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var copied = Build(seed, borrow: false);
        var borrowed = Build(seed, borrow: true);
        Assert.That(borrowed, Is.EqualTo(copied), "the tree's shape after the commits and a reopen");
    }

    /// <summary>
    /// Three transactions of seeded puts into a fresh file; each checks every value inside the transaction
    /// (before the commit) and against a model after it. With <paramref name="borrow"/>, every value lives in
    /// one buffer of the test's, written once per put and never again until its transaction has ended.
    /// </summary>
    private static (long Pages, long FreePages, int Depth, long Entries, long FileBytes) Build(int seed, bool borrow)
    {
        var random = new Random(seed);
        var fs = NewDisk(seed);
        var model = NewModel();
        using (var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages))
        {
            long next = 0;
            for (int round = 0; round < 3; round++)
            {
                using var tx = db.BeginWrite();
                var bucket = round == 0 ? tx.CreateBucket("b") : tx.OpenBucket("b")!;
                var buffer = new byte[1 << 20];
                int used = 0;
                var written = new List<(byte[] Key, ReadOnlyMemory<byte> Value)>();
                int puts = random.Next(500, 2_500);
                for (int i = 0; i < puts; i++)
                {
                    // Mostly in order (the append path), some random keys and some replaced ones.
                    long n = random.Next(10) switch
                    {
                        0 => random.NextInt64(0, next + 1),
                        1 when model.Count > 0 => BinaryPrimitives.ReadInt64BigEndian(model.Keys.ElementAt(random.Next(model.Count))),
                        _ => next++,
                    };
                    var key = new byte[8];
                    BinaryPrimitives.WriteInt64BigEndian(key, n);
                    int length = random.Next(20) == 0 ? random.Next(1_000, 5_000) : random.Next(0, 150);
                    var value = buffer.AsMemory(used, length);
                    random.NextBytes(value.Span);
                    used += length;
                    if (borrow)
                    {
                        bucket.PutBorrowingValue(key, value);
                    }
                    else
                    {
                        bucket.Put(key, value.Span);
                    }

                    written.Add((key, value));
                    model[key] = value.ToArray();
                }

                // Inside the transaction, each key's last value is what the tree answers.
                foreach (var (key, _) in written)
                {
                    Assert.That(bucket.TryGet(key, out var found), Is.True);
                    Assert.That(found.ToArray(), Is.EqualTo(model[key]), $"seed {seed}, round {round}, before the commit");
                }

                tx.Commit();
            }

        }

        using var reopened = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var expected = new Dictionary<string, SortedDictionary<byte[], byte[]>> { ["b"] = model };
        Assert.That(Difference(expected, ReadAll(reopened)), Is.Null, $"seed {seed}, after the commits and a reopen");
        var check = reopened.Check();
        var statistics = reopened.GetStatistics();
        Assert.That(check.EntryCount, Is.EqualTo(model.Count));
        return (statistics.PageCount, statistics.FreePageCount, statistics.TreeDepth, statistics.EntryCount, statistics.FileSizeBytes);
    }

    private static IEnumerable<int> BorrowSeeds() => Seeds(1, Soak ? 40 : 8);
}
