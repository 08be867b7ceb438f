using System.Buffers.Binary;
using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// <see cref="Bucket.FindMany"/> (the pipelined lookups of the MVCC store's batched reads) gives
/// the same answers as one <see cref="Bucket.TryGet"/> each: present and absent keys, inline and
/// overflow values, trees of one leaf and of several levels, batches of one to hundreds.
/// </summary>
public class FindManyTests
{
    private const int KeyLength = 12;

    [TestCaseSource(nameof(FindSeeds))]
    public void LookupsMadeTogetherFindWhatEachLookupFindsAlone(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var fs = NewDisk(seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        int keys = random.Next(1, 4) switch { 1 => random.Next(1, 8), 2 => random.Next(50, 400), _ => random.Next(2_000, 6_000) };
        var present = new List<byte[]>();
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("b");
            for (int i = 0; i < keys; i++)
            {
                // Even numbers only, so odd ones are absent keys between present ones.
                var key = Key(2L * random.Next(0, 1_000_000));
                int valueLength = random.Next(10) == 0 ? random.Next(300, 3_000) : random.Next(0, 120);
                bucket.Put(key, RandomBytes(random, valueLength));
                present.Add(key);
            }

            tx.Commit();
        }

        using (var tx = db.BeginRead())
        {
            var bucket = tx.OpenBucket("b")!;
            Assert.That(bucket.CanFindMany, Is.True);
            for (int round = 0; round < 20; round++)
            {
                int n = random.Next(1, 300);
                var batch = new byte[n * KeyLength];
                for (int i = 0; i < n; i++)
                {
                    var key = random.Next(3) == 0 ? Key((2L * random.Next(0, 1_000_000)) + 1) : present[random.Next(present.Count)];
                    key.CopyTo(batch.AsSpan(i * KeyLength));
                }

                var hits = new LeafHit[n];
                bucket.FindMany(batch, KeyLength, hits);
                for (int i = 0; i < n; i++)
                {
                    var key = batch.AsSpan(i * KeyLength, KeyLength);
                    bool found = bucket.TryGet(key, out var expected);
                    Assert.That(hits[i].Found, Is.EqualTo(found), $"key {i} of {n}, round {round}");
                    if (found)
                    {
                        Assert.That(bucket.ValueAt(hits[i]).ToArray(), Is.EqualTo(expected.ToArray()), $"key {i} of {n}, round {round}");
                    }
                }
            }
        }
    }

    [Test]
    public void AnEmptyTreeFindsNothingAndBadBatchesAreRefused()
    {
        var fs = NewDisk(1);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using (var tx = db.BeginWrite())
        {
            tx.CreateBucket("b");
            tx.Commit();
        }

        using var read = db.BeginRead();
        var bucket = read.OpenBucket("b")!;
        var hits = new LeafHit[2];
        bucket.FindMany(new byte[2 * KeyLength], KeyLength, hits);
        Assert.That(hits.Any(h => h.Found), Is.False);
        Assert.Throws<ArgumentException>(() => bucket.FindMany(new byte[KeyLength], KeyLength, new LeafHit[2]));
        Assert.Throws<ArgumentException>(() => bucket.FindMany(new byte[2], 0, new LeafHit[2]));
    }

    [Test]
    public void AWriteTransactionsChangedTreeIsRefused()
    {
        var fs = NewDisk(2);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var tx = db.BeginWrite();
        var bucket = tx.CreateBucket("b");
        bucket.Put(Key(1), [1]);
        Assert.That(bucket.CanFindMany, Is.False);
        Assert.Throws<InvalidOperationException>(() => bucket.FindMany(new byte[KeyLength], KeyLength, new LeafHit[1]));
    }

    private static IEnumerable<int> FindSeeds() => Seeds(1, Soak ? 60 : 12);

    private static byte[] Key(long n)
    {
        var key = new byte[KeyLength];
        "k:"u8.CopyTo(key);
        BinaryPrimitives.WriteInt64BigEndian(key.AsSpan(4), n);
        return key;
    }
}
