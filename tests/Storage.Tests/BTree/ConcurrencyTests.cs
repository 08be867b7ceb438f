using System.Collections.Concurrent;
using System.Collections.Immutable;
using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// Readers iterate long snapshots on their own threads while the writer commits thousands of
/// transactions that overwrite, delete and insert (so freed pages are reused under them); every
/// reader must see exactly the state of the commit its transaction began on.
/// </summary>
public class ConcurrencyTests
{
    [Test]
    public void ReadersSeeExactlyTheirSnapshotWhileTheWriterCommitsThousandsOfTransactions()
    {
        const int Seed = 77;
        int commits = Soak ? 20_000 : 3_000;
        TestContext.Out.WriteLine($"seed {Seed}, {commits} commits");
        var fs = NewDisk(Seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var snapshots = new ConcurrentDictionary<long, ImmutableSortedDictionary<byte[], byte[]>>();
        var model = ImmutableSortedDictionary.Create<byte[], byte[]>(ByteOrder.Instance);
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("b");
            for (int k = 0; k < 600; k++)
            {
                var key = BitConverter.GetBytes(k * 2);
                bucket.Put(key, key);
                model = model.SetItem(key, key);
            }

            snapshots[tx.Id] = model;
            tx.Commit();
        }

        var writerDone = new ManualResetEventSlim();
        var errors = new ConcurrentQueue<Exception>();
        var verified = new int[3];
        var writer = Task.Factory.StartNew(
            () =>
            {
                try
                {
                    var random = new Random(Seed);
                    for (int c = 0; c < commits; c++)
                    {
                        using var tx = db.BeginWrite();
                        var bucket = tx.OpenBucket("b")!;
                        int changes = random.Next(1, 30);
                        for (int i = 0; i < changes; i++)
                        {
                            var key = BitConverter.GetBytes(random.Next(1200));
                            if (random.Next(3) == 0)
                            {
                                bucket.Delete(key);
                                model = model.Remove(key);
                            }
                            else
                            {
                                var value = RandomBytes(random, random.Next(20) == 0 ? 2000 : random.Next(1, 50));
                                bucket.Put(key, value);
                                model = model.SetItem(key, value);
                            }
                        }

                        // Published before the commit, so a reader that sees the commit finds its model.
                        snapshots[tx.Id] = model;
                        tx.Commit(c % 5 == 0 ? CommitDurability.Synced : CommitDurability.NoSync);
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
                finally
                {
                    writerDone.Set();
                }
            },
            TaskCreationOptions.LongRunning);

        var readers = Enumerable.Range(0, verified.Length).Select(r => Task.Factory.StartNew(
            () =>
            {
                try
                {
                    // Each reader verifies at least twice, and keeps going while the writer runs.
                    while (!writerDone.IsSet || verified[r] < 2)
                    {
                        using var tx = db.BeginRead();
                        var expected = snapshots[tx.Id];
                        var bucket = tx.OpenBucket("b")!;

                        // A long snapshot: walked forwards, probed, then walked backwards.
                        VerifyForward(bucket, expected, tx.Id);
                        foreach (var (key, value) in expected.Take(50))
                        {
                            Assert.That(bucket.Get(key), Is.EqualTo(value), $"snapshot {tx.Id}");
                        }

                        VerifyBackward(bucket, expected, tx.Id);
                        verified[r]++;
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            },
            TaskCreationOptions.LongRunning)).ToArray();

        Task.WaitAll([writer, .. readers]);
        Assert.That(errors, Is.Empty, string.Join("\n", errors));
        Assert.That(verified, Has.All.GreaterThanOrEqualTo(2));
        TestContext.Out.WriteLine($"snapshots verified per reader: {string.Join(", ", verified)}");
        db.Check();
    }

    [Test]
    public void LookupsInOneReadTransactionFromSeveralThreadsAtOnceSeeItsSnapshot()
    {
        // The MVCC store's ranges share one read transaction between commits (SharedReadView):
        // several threads look keys up in the same open bucket at once, through a page cache small
        // enough to evict and reload pages under them, while the writer overwrites every key.
        const int Seed = 31;
        TestContext.Out.WriteLine($"seed {Seed}");
        var fs = NewDisk(Seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var random = new Random(Seed);
        var expected = new Dictionary<int, byte[]>();
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("b");
            for (int k = 0; k < 1500; k++)
            {
                // Some values large enough for overflow pages.
                expected[k] = RandomBytes(random, random.Next(10) == 0 ? 1500 : random.Next(1, 60));
                bucket.Put(BitConverter.GetBytes(k), expected[k]);
            }

            tx.Commit();
        }

        using var shared = db.BeginRead();
        var sharedBucket = shared.OpenBucket("b")!;
        var errors = new ConcurrentQueue<Exception>();
        using var writerDone = new ManualResetEventSlim();
        var writer = Task.Factory.StartNew(
            () =>
            {
                try
                {
                    var writes = new Random(Seed + 1);
                    for (int c = 0; c < 300; c++)
                    {
                        using var tx = db.BeginWrite();
                        var bucket = tx.OpenBucket("b")!;
                        for (int i = 0; i < 20; i++)
                        {
                            bucket.Put(BitConverter.GetBytes(writes.Next(1500)), RandomBytes(writes, writes.Next(1, 80)));
                        }

                        tx.Commit(CommitDurability.NoSync);
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
                finally
                {
                    writerDone.Set();
                }
            },
            TaskCreationOptions.LongRunning);

        var lookups = new long[4];
        var readers = Enumerable.Range(0, lookups.Length).Select(r => Task.Factory.StartNew(
            () =>
            {
                try
                {
                    var keys = new Random(Seed * 10 + r);
                    while (!writerDone.IsSet || lookups[r] < 2000)
                    {
                        int k = keys.Next(1500);
                        Assert.That(sharedBucket.TryGet(BitConverter.GetBytes(k), out var value), Is.True, $"key {k}");
                        Assert.That(value.SequenceEqual(expected[k]), Is.True, $"key {k}: the value of the shared snapshot");
                        Assert.That(sharedBucket.TryGet(BitConverter.GetBytes(1500 + k), out _), Is.False, "a key the snapshot never had");
                        lookups[r]++;
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }
            },
            TaskCreationOptions.LongRunning)).ToArray();

        Task.WaitAll([writer, .. readers]);
        Assert.That(errors, Is.Empty, string.Join("\n", errors));
        TestContext.Out.WriteLine($"lookups per thread: {string.Join(", ", lookups)}");
        db.Check();
    }

    [Test]
    public void ALongRunningReaderNeverSeesItsPagesOverwritten()
    {
        var fs = NewDisk(5);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var random = new Random(5);
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("b");
            for (int k = 0; k < 2000; k++)
            {
                bucket.Put(BitConverter.GetBytes(k), RandomBytes(random, random.Next(1, 100)));
            }

            tx.Commit();
        }

        var reader = db.BeginRead();
        var expected = ReadAll(reader);
        for (int c = 0; c < 200; c++)
        {
            using var tx = db.BeginWrite();
            var bucket = tx.OpenBucket("b")!;
            for (int i = 0; i < 50; i++)
            {
                var key = BitConverter.GetBytes(random.Next(2000));
                if (random.Next(2) == 0)
                {
                    bucket.Delete(key);
                }
                else
                {
                    bucket.Put(key, RandomBytes(random, random.Next(1, 300)));
                }
            }

            tx.Commit();
        }

        Assert.That(Difference(expected, ReadAll(reader)), Is.Null);
        reader.Dispose();
    }

    [Test]
    public void WithoutReadersFreedPagesAreReusedSoTheFileStopsGrowing()
    {
        var fs = NewDisk(6);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var random = new Random(6);
        long pagesAfterWarmUp = 0;
        for (int c = 0; c < 400; c++)
        {
            using (var tx = db.BeginWrite())
            {
                var bucket = tx.CreateBucketIfNotExists("b");
                for (int i = 0; i < 40; i++)
                {
                    bucket.Put(BitConverter.GetBytes(random.Next(1000)), RandomBytes(random, 40));
                }

                tx.Commit();
            }

            if (c == 200)
            {
                pagesAfterWarmUp = db.GetStatistics().PageCount;
            }
        }

        Assert.That(db.GetStatistics().PageCount, Is.LessThanOrEqualTo(pagesAfterWarmUp + (pagesAfterWarmUp / 10)));
        db.Check();
    }

    [Test]
    public void AnOpenReaderKeepsThePagesItCanSeeFromBeingReused()
    {
        var fs = NewDisk(9);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using (var tx = db.BeginWrite())
        {
            tx.CreateBucket("b").Put("k"u8, new byte[100]);
            tx.Commit();
        }

        using var reader = db.BeginRead();
        long before = db.GetStatistics().PageCount;
        for (int c = 0; c < 20; c++)
        {
            using var tx = db.BeginWrite();
            tx.OpenBucket("b")!.Put("k"u8, new byte[100]);
            tx.Commit();
        }

        // Every commit rewrote the leaf; the reader's old one (and its successors' freed pages
        // released behind it) cannot all be reused, so the file grew.
        Assert.That(db.GetStatistics().PageCount, Is.GreaterThan(before + 10));
        Assert.That(reader.OpenBucket("b")!.Get("k"u8), Is.EqualTo(new byte[100]));
    }

    private static void VerifyForward(Bucket bucket, ImmutableSortedDictionary<byte[], byte[]> expected, long snapshot)
    {
        var cursor = bucket.CreateCursor();
        using var e = expected.GetEnumerator();
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            Assert.That(e.MoveNext(), Is.True, $"snapshot {snapshot}: more keys than expected");
            Assert.That(cursor.Key.SequenceEqual(e.Current.Key), Is.True, $"snapshot {snapshot}: key");
            Assert.That(cursor.Value.SequenceEqual(e.Current.Value), Is.True, $"snapshot {snapshot}: value");
        }

        Assert.That(e.MoveNext(), Is.False, $"snapshot {snapshot}: fewer keys than expected");
        Assert.That(bucket.Count, Is.EqualTo(expected.Count), $"snapshot {snapshot}: count");
    }

    private static void VerifyBackward(Bucket bucket, ImmutableSortedDictionary<byte[], byte[]> expected, long snapshot)
    {
        var cursor = bucket.CreateCursor();
        using var e = expected.Reverse().GetEnumerator();
        for (bool more = cursor.Last(); more; more = cursor.Previous())
        {
            Assert.That(e.MoveNext(), Is.True, $"snapshot {snapshot}: more keys than expected (backwards)");
            Assert.That(cursor.Key.SequenceEqual(e.Current.Key), Is.True, $"snapshot {snapshot}: key (backwards)");
        }

        Assert.That(e.MoveNext(), Is.False, $"snapshot {snapshot}: fewer keys than expected (backwards)");
    }
}
