using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>Watches on every member see exactly the committed history, checked against the leader's history read revision by revision.</summary>
public sealed class ReplicatedWatchTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1900, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task WatchesOnEveryMemberSeeExactlyTheHistoryTheLeaderReadsRevisionByRevision(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var ids = cluster.Members.Keys.ToArray();
        var watches = ids.ToDictionary(id => id, id => cluster[id].Watch(new WatchRequest { Key = Key("w/"), RangeEnd = Key("w0"), StartRevision = 1 }));

        // A seeded workload from every member, some of it concurrent: puts, deletes (of a key and of
        // ranges) and transactions.
        const int Operations = 120;
        var inFlight = new List<Task>();
        for (int i = 0; i < Operations; i++)
        {
            var member = cluster[ids[random.Next(ids.Length)]];
            string key = $"w/{random.Next(12):D2}";
            int dice = random.Next(10);
            Task op = dice switch
            {
                < 6 => member.PutAsync(new PutRequest { Key = Key(key), Value = Key($"v{i}") }).AsTask(),
                < 8 => member.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(key), RangeEnd = random.Next(3) == 0 ? Key($"w/{random.Next(12, 20):D2}") : default }).AsTask(),
                _ => member.TxnAsync(new TxnRequest
                {
                    Compare = [new Compare { Key = Key(key), Target = CompareTarget.Version, Result = CompareResult.Greater, Version = 0 }],
                    Success = [RequestOp.Put(new PutRequest { Key = Key(key), Value = Key($"t{i}") }), RequestOp.Put(new PutRequest { Key = Key("w/zz"), Value = Key($"t{i}") })],
                    Failure = [RequestOp.Put(new PutRequest { Key = Key(key), Value = Key($"f{i}") })],
                }).AsTask(),
            };
            inFlight.Add(op);
            if (random.Next(4) == 0)
            {
                await Task.WhenAll(inFlight).WaitAsync(Waits.Limit);
                inFlight.Clear();
            }
        }

        await Task.WhenAll(inFlight).WaitAsync(Waits.Limit);
        ulong leader = cluster.LeaderId();
        long final = (await cluster[leader].RangeAsync(new RangeRequest { Key = Key("w/") })).Header.Revision;
        var expected = await HistoryAsync(cluster[leader], final);
        Assert.That(expected, Has.Count.GreaterThan(Operations / 2), "the workload wrote a history");

        foreach (var id in ids)
        {
            var seen = new List<string>();
            await using var events = watches[id].GetAsyncEnumerator();
            while (seen.Count < expected.Count)
            {
                Assert.That(await events.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.True, $"member {id}'s watch ended early");
                var response = events.Current;
                Assert.That(response.Header.MemberId, Is.EqualTo(id), "watch headers name the member");
                seen.AddRange(response.Events.Select(Describe));
            }

            Assert.That(seen, Is.EqualTo(expected), $"member {id}'s watch against the leader's history");
            watches[id].Dispose();
        }
    }

    /// <summary>Every change to <c>w/</c> keys from revision 2 to <paramref name="final"/>, reconstructed from ranges at each revision.</summary>
    private static async Task<List<string>> HistoryAsync(Mvcc.Replication.ReplicatedStore leader, long final)
    {
        var history = new List<string>();
        var before = new Dictionary<string, KeyValue>();
        for (long revision = 2; revision <= final; revision++)
        {
            var at = (await leader.RangeAsync(new RangeRequest { Key = Key("w/"), RangeEnd = Key("w0"), Revision = revision })).Kvs.ToDictionary(kv => Text(kv.Key));
            var changes = new SortedDictionary<string, string>(StringComparer.Ordinal);
            foreach (var (key, kv) in at)
            {
                if (kv.ModRevision == revision)
                {
                    changes[key] = Describe(new WatchEvent { Type = WatchEventType.Put, Kv = kv });
                }
            }

            foreach (var key in before.Keys.Where(k => !at.ContainsKey(k)))
            {
                changes[key] = Describe(new WatchEvent { Type = WatchEventType.Delete, Kv = new KeyValue { Key = Key(key), ModRevision = revision } });
            }

            history.AddRange(changes.Values);
            before = at;
        }

        return history;
    }

    private static string Describe(WatchEvent e) =>
        e.Type == WatchEventType.Put
            ? $"{e.Kv.ModRevision} put {Text(e.Kv.Key)}={Text(e.Kv.Value)} c{e.Kv.CreateRevision} v{e.Kv.Version}"
            : $"{e.Kv.ModRevision} delete {Text(e.Kv.Key)}";
}
