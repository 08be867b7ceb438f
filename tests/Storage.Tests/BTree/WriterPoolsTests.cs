using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// Structures the writer reuses from one write transaction to the next (node maps, dirty page lists)
/// come back empty, and transactions that reuse them see only their own nodes and pages.
/// </summary>
public class WriterPoolsTests
{
    [Test]
    public void AReturnedNodeMapIsReusedEmpty()
    {
        var pools = new WriterPools(1024);
        var map = pools.RentNodeMap();
        map.Add(7, new Node(parent: null, pageId: 7, key: default, new byte[1024]));

        pools.ReturnNodeMap(map);
        var again = pools.RentNodeMap();

        Assert.That(again, Is.SameAs(map));
        Assert.That(again, Is.Empty);
    }

    [Test]
    public void AReturnedDirtyPageListIsReusedEmpty()
    {
        var pools = new WriterPools(1024);
        var list = pools.RentDirtyPageList();
        list.Add((5, new byte[1024], true));

        pools.ReturnDirtyPageList(list);
        var again = pools.RentDirtyPageList();

        Assert.That(again, Is.SameAs(list));
        Assert.That(again, Is.Empty);
    }

    [TestCaseSource(nameof(ReuseSeeds))]
    public void TransactionsThatReuseNodeMapsAndPageListsSeeOnlyTheirOwnChanges(int seed)
    {
        // Buckets change in turn, so the map one bucket's tree returned is the next one's; freed page
        // ids come back into use, so a node left over in a map under a reused id would be found by a
        // later descent. Rolled-back transactions drop their maps and lists half used.
        var random = new Random(seed);
        TestContext.Out.WriteLine($"seed {seed} (replay with BTREE_SEED={seed})");
        using var db = BTreeDatabase.Open(NewDisk(seed), DatabasePath, SmallPages);
        string[] names = ["a", "b", "c"];
        var model = names.ToDictionary(n => n, _ => NewModel(), StringComparer.Ordinal);
        using (var create = db.BeginWrite())
        {
            foreach (string name in names)
            {
                create.CreateBucket(name);
            }

            create.Commit();
        }

        for (int round = 0; round < 60; round++)
        {
            string name = names[round % names.Length];
            bool rollback = random.Next(5) == 0;
            var changed = new SortedDictionary<byte[], byte[]>(model[name], ByteOrder.Instance);
            using (var tx = db.BeginWrite())
            {
                var bucket = tx.OpenBucket(name)!;
                for (int i = random.Next(20, 200); i > 0; i--)
                {
                    var key = RandomBytes(random, random.Next(1, 13));
                    if (random.Next(6) == 0 && changed.Count > 0)
                    {
                        var victim = changed.Keys.ElementAt(random.Next(changed.Count));
                        Assert.That(bucket.Delete(victim), Is.True);
                        changed.Remove(victim);
                        continue;
                    }

                    var value = RandomBytes(random, random.Next(0, 61));
                    bucket.Put(key, value);
                    changed[key] = value;
                }

                if (rollback)
                {
                    tx.Rollback();
                }
                else
                {
                    tx.Commit();
                    model[name] = changed;
                }
            }

            db.Check();
            Assert.That(Difference(model, ReadAll(db)), Is.Null, $"seed {seed}, round {round}");
        }
    }

    private static IEnumerable<int> ReuseSeeds() => Seeds(1, Soak ? 30 : 3);
}
