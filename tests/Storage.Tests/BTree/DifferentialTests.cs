using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// Random operations against the B+tree and a SortedDictionary model side by side: puts (with key
/// and value sizes from tiny to overflow), deletes, gets, seeks, forward and backward iteration,
/// bucket creation and deletion, commits (synced and not), rollbacks and reopens. Check runs after
/// every commit. Reproduce a failure with BTREE_SEED=N.
/// </summary>
public class DifferentialTests
{
    private const int OperationsPerSeed = 26_000;

    private static IEnumerable<int> SeedCases() => Seeds(1, Soak ? 40 : 4);

    [TestCaseSource(nameof(SeedCases))]
    public void RandomOperationsMatchASortedDictionaryModel(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (reproduce with BTREE_SEED={seed})");
        var random = new Random(seed);
        var fs = NewDisk(seed);
        var options = SmallPages;
        var db = BTreeDatabase.Open(fs, DatabasePath, options);
        var committed = new Dictionary<string, SortedDictionary<byte[], byte[]>>(StringComparer.Ordinal);
        string[] bucketNames = ["alpha", "beta", "gamma"];
        int keySpace = random.Next(500, 6000);
        int operations = Soak ? OperationsPerSeed * 4 : OperationsPerSeed;
        int done = 0;
        int commits = 0;
        try
        {
            while (done < operations)
            {
                var working = Copy(committed);
                var tx = db.BeginWrite();
                int opsInTx = random.Next(1, random.Next(2) == 0 ? 20 : 400);

                // Some transactions mostly delete, so trees shrink and pages merge, then grow again.
                int deletePercent = random.Next(4) == 0 ? 60 : 12;
                for (int i = 0; i < opsInTx && done < operations; i++, done++)
                {
                    Step(random, tx, working, bucketNames, keySpace, deletePercent, seed, done);
                }

                int ending = random.Next(10);
                if (ending < 7)
                {
                    tx.Commit(random.Next(4) == 0 ? CommitDurability.NoSync : CommitDurability.Synced);
                    committed = working;
                    commits++;
                    var report = db.Check();
                    Assert.That(report.EntryCount, Is.EqualTo(committed.Values.Sum(b => (long)b.Count)), $"seed {seed}: entry count after commit {commits}");
                }
                else
                {
                    tx.Rollback();
                }

                if (random.Next(25) == 0)
                {
                    db.Dispose();
                    db = BTreeDatabase.Open(fs, DatabasePath, options);
                    db.Check();
                }

                if (random.Next(10) == 0)
                {
                    Assert.That(Difference(committed, ReadAll(db)), Is.Null, $"seed {seed}: after {done} operations (reproduce with BTREE_SEED={seed})");
                }
            }

            Assert.That(Difference(committed, ReadAll(db)), Is.Null, $"seed {seed}: at the end (reproduce with BTREE_SEED={seed})");
            TestContext.Out.WriteLine($"{done} operations, {commits} commits, {db.GetStatistics()}");
        }
        finally
        {
            db.Dispose();
        }
    }

    private static void Step(Random random, Transaction tx, Dictionary<string, SortedDictionary<byte[], byte[]>> model, string[] bucketNames, int keySpace, int deletePercent, int seed, int step)
    {
        string name = bucketNames[random.Next(bucketNames.Length)];
        string where = $"seed {seed}, step {step}, bucket '{name}' (reproduce with BTREE_SEED={seed})";
        if (random.Next(3000) == 0)
        {
            Assert.That(tx.DeleteBucket(name), Is.EqualTo(model.Remove(name)), where);
            return;
        }

        if (!model.TryGetValue(name, out var expected))
        {
            Assert.That(tx.OpenBucket(name), Is.Null, where);
            tx.CreateBucket(name);
            model.Add(name, expected = NewModel());
        }

        var bucket = tx.OpenBucket(name)!;
        var key = RandomKey(random, keySpace);
        int action = random.Next(100);
        if (action < deletePercent)
        {
            Assert.That(bucket.Delete(key), Is.EqualTo(expected.Remove(key)), where);
            Assert.That(bucket.Count, Is.EqualTo(expected.Count), where);
            return;
        }

        switch (random.Next(100))
        {
            case < 50:
            {
                var value = RandomValue(random);
                bucket.Put(key, value);
                expected[key] = value;
                break;
            }

            case < 75:
            {
                bool found = bucket.TryGet(key, out var value);
                Assert.That(found, Is.EqualTo(expected.TryGetValue(key, out var want)), where);
                if (found)
                {
                    Assert.That(value.SequenceEqual(want), Is.True, where);
                }

                break;
            }

            case < 92:
                SeekAndWalk(random, bucket, expected, key, where);
                break;
            default:
                WalkFromAnEnd(random, bucket, expected, where);
                break;
        }

        Assert.That(bucket.Count, Is.EqualTo(expected.Count), where);
    }

    private static void SeekAndWalk(Random random, Bucket bucket, SortedDictionary<byte[], byte[]> expected, byte[] key, string where)
    {
        var keys = expected.Keys.ToList();
        int index = keys.BinarySearch(key, ByteOrder.Instance);
        if (index < 0)
        {
            index = ~index;
        }

        var cursor = bucket.CreateCursor();
        bool positioned = cursor.Seek(key);
        Assert.That(positioned, Is.EqualTo(index < keys.Count), where);
        bool forward = random.Next(2) == 0;
        int steps = random.Next(1, 40);
        for (int s = 0; s < steps && positioned; s++)
        {
            Assert.That(cursor.Key.SequenceEqual(keys[index]), Is.True, $"{where}: cursor key at model index {index}");
            Assert.That(cursor.Value.SequenceEqual(expected[keys[index]]), Is.True, $"{where}: cursor value at model index {index}");
            positioned = forward ? cursor.Next() : cursor.Previous();
            index += forward ? 1 : -1;
            Assert.That(positioned, Is.EqualTo(index >= 0 && index < keys.Count), where);
        }
    }

    private static void WalkFromAnEnd(Random random, Bucket bucket, SortedDictionary<byte[], byte[]> expected, string where)
    {
        var cursor = bucket.CreateCursor();
        bool fromFirst = random.Next(2) == 0;
        var keys = fromFirst ? expected.Keys.ToList() : expected.Keys.Reverse().ToList();
        int i = 0;
        for (bool more = fromFirst ? cursor.First() : cursor.Last(); more; more = fromFirst ? cursor.Next() : cursor.Previous())
        {
            Assert.That(i, Is.LessThan(keys.Count), where);
            Assert.That(cursor.Key.SequenceEqual(keys[i]), Is.True, $"{where}: full walk at {i}");
            i++;
        }

        Assert.That(i, Is.EqualTo(keys.Count), where);
    }

    /// <summary>Keys from a bounded space (so puts overwrite and deletes hit), 1 to 64 bytes long, sharing prefixes.</summary>
    private static byte[] RandomKey(Random random, int keySpace)
    {
        int n = random.Next(keySpace);
        int length = 1 + (n * 7919 % 64);
        var key = new byte[length];
        var inner = new Random(n);
        inner.NextBytes(key);
        key[0] = (byte)(n % 5); // a few shared first bytes
        return key;
    }

    private static byte[] RandomValue(Random random) => random.Next(20) switch
    {
        0 => [],
        1 => RandomBytes(random, random.Next(240, 5000)), // overflow at 1 KiB pages
        < 5 => RandomBytes(random, random.Next(100, 240)),
        _ => RandomBytes(random, random.Next(1, 40)),
    };
}
