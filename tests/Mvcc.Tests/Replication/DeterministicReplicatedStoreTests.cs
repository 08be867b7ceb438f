using System.Text;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The real replicated store on one deterministic scheduler (issue 18): the same seed gives the
/// same execution, step for step, and no library work runs off the driving thread.
/// </summary>
[TestFixture]
public sealed class DeterministicReplicatedStoreTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("DETERMINISTIC_SEED", "DETERMINISTIC_SOAK_SEEDS", 1, 1);

    [TestCaseSource(nameof(Seeds))]
    public void PutsOnAThreeMemberClusterRepeatExactlyForTheSameSeed(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: DETERMINISTIC_SEED={seed})");
        var first = RunPuts(seed);
        var second = RunPuts(seed);
        var other = RunPuts(seed + 1_000_000);

        Assert.That(second.Hash, Is.EqualTo(first.Hash), $"seed {seed}: two runs of the same seed took different steps; {FirstDifference(first.Trace, second.Trace)}");
        Assert.That(other.Hash, Is.Not.EqualTo(first.Hash), $"seed {seed}: another seed took exactly the same {first.Trace.Count} steps, so the trace does not see the seed");
    }

    [TestCaseSource(nameof(Seeds))]
    public void AWholeScenarioRepeatsExactlyForTheSameSeedAndNothingLeavesTheScheduler(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: DETERMINISTIC_SEED={seed})");
        var first = RunScenario(seed);
        var second = RunScenario(seed);
        var other = RunScenario(seed + 1_000_000);

        Assert.That(second.Hash, Is.EqualTo(first.Hash), $"seed {seed}: two runs of the same seed took different steps; {FirstDifference(first.Trace, second.Trace)}");
        Assert.That(other.Hash, Is.Not.EqualTo(first.Hash), $"seed {seed}: another seed took exactly the same {first.Trace.Count} steps, so the trace does not see the seed");
        TestContext.Out.WriteLine($"seed {seed}: {first.Trace.Count} trace lines, hash {first.Hash}");
    }

    /// <summary>
    /// Elect; puts, a txn and a delete through every member; linearizable and serializable reads; a
    /// watch on one member over the whole run; a lease granted, kept alive, then left to expire;
    /// a compaction; a member partitioned past the snapshot threshold that catches up by a
    /// snapshot; that member crashed and restarted from its disk; every member's hash at the end.
    /// Checks the outcomes as it goes, and returns the trace's hash.
    /// </summary>
    private static (string Hash, IReadOnlyList<string> Trace) RunScenario(int seed)
    {
        using var cluster = new DeterministicCluster(seed, 3, o => o with { Raft = o.Raft with { SnapshotEveryEntries = 20 } });
        var random = cluster.Random;
        ulong leader = cluster.StartAll();
        var followers = cluster.Members.Keys.Where(id => id != leader).Order().ToList();
        ulong watching = followers[random.Next(2)];
        ulong lagging = followers.Single(id => id != watching);
        long revision = 1;

        // A watch over every key the scenario writes ("k" to "l"), from the first revision on, on a follower.
        var events = new List<WatchEvent>();
        using var stopWatching = new CancellationTokenSource();
        var watchStore = cluster[watching];
        var watch = cluster.Scheduler.Run(async () =>
        {
            try
            {
                await foreach (var response in watchStore.WatchAsync(new WatchRequest { Key = Bytes("k"), RangeEnd = Bytes("l"), StartRevision = 1 }, stopWatching.Token))
                {
                    events.AddRange(response.Events);
                    cluster.Record($"watch on m{watching}: {string.Join(",", response.Events.Select(e => $"{e.Type} {Text(e.Kv.Key)}@{e.Kv.ModRevision}"))}");
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        // Writes through random members (followers forward to the leader).
        for (int i = 0; i < 10; i++)
        {
            ulong via = RandomMember(cluster);
            string key = $"k{random.Next(4)}";
            var put = cluster.Do(via, $"put {key}={i}", s => s.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"v{i}") }), r => $"rev {r.Header.Revision}");
            Assert.That(put.Header.Revision, Is.EqualTo(++revision), $"seed {seed}: put {i}'s revision");
        }

        // Compare-and-set: succeeds against the current mod revision, fails against a stale one.
        var current = cluster.Do(leader, "range k0", s => s.RangeAsync(new RangeRequest { Key = Bytes("k0") }), r => $"{r.Count} at {r.Header.Revision}");
        long k0Mod = current.Count == 0 ? 0 : current.Kvs[0].ModRevision;
        foreach (long expected in new[] { k0Mod, k0Mod - 1 })
        {
            var txn = cluster.Do(RandomMember(cluster), $"cas k0 if mod={expected}", s => s.TxnAsync(new TxnRequest
            {
                Compare = [new Compare { Key = Bytes("k0"), Target = CompareTarget.Mod, Result = CompareResult.Equal, ModRevision = expected }],
                Success = [RequestOp.Put(new PutRequest { Key = Bytes("k0"), Value = Bytes("swapped") })],
                Failure = [RequestOp.Range(new RangeRequest { Key = Bytes("k0") })],
            }), r => $"{r.Succeeded} at {r.Header.Revision}");
            Assert.That(txn.Succeeded, Is.EqualTo(expected == k0Mod), $"seed {seed}: compare-and-set against mod revision {expected} (current {k0Mod})");
            revision += txn.Succeeded ? 1 : 0;
        }

        var deleted = cluster.Do(RandomMember(cluster), "delete k0..k2", s => s.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes("k0"), RangeEnd = Bytes("k2") }), r => $"{r.Deleted} at {r.Header.Revision}");
        revision += deleted.Deleted > 0 ? 1 : 0;

        foreach (ulong id in cluster.Members.Keys.Order().ToList())
        {
            var linearizable = cluster.Do(id, "range k..l", s => s.RangeAsync(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l") }), r => $"{r.Count} at {r.Header.Revision}");
            Assert.That(linearizable.Header.Revision, Is.EqualTo(revision), $"seed {seed}: a linearizable read on member {id} sees every acknowledged write");
            var serializable = cluster.Do(id, "local range k..l", s => s.RangeAsync(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l") }, ReadConsistency.Serializable), r => $"{r.Count} at {r.Header.Revision}");
            Assert.That(serializable.Header.Revision, Is.EqualTo(revision), $"seed {seed}: member {id} applied everything before its linearizable read returned");
        }

        // A lease: granted, a key attached, kept alive past its TTL, then left to expire on the leader's clock.
        var grant = cluster.Do(RandomMember(cluster), "lease grant 3s", s => s.LeaseGrantAsync(3), r => $"lease {r.Id} ttl {r.TtlSeconds}");
        var leased = cluster.Do(RandomMember(cluster), "put k-lease", s => s.PutAsync(new PutRequest { Key = Bytes("k-lease"), Value = Bytes("held"), Lease = grant.Id }), r => $"rev {r.Header.Revision}");
        revision = leased.Header.Revision;
        for (int i = 0; i < 3; i++)
        {
            cluster.RunFor(TimeSpan.FromSeconds(2));
            cluster.Do(RandomMember(cluster), $"keep-alive {i}", s => s.LeaseKeepAliveAsync(grant.Id), r => $"ttl {r.TtlSeconds}");
        }

        var alive = cluster.Do(RandomMember(cluster), "range k-lease", s => s.RangeAsync(new RangeRequest { Key = Bytes("k-lease") }), r => $"{r.Count}");
        Assert.That(alive.Count, Is.EqualTo(1), $"seed {seed}: a lease kept alive past its TTL keeps its key");
        cluster.RunUntil(() => cluster.Members.Values.All(m => m.Status.Revision > revision), "the lease's expiry applied everywhere", TimeSpan.FromSeconds(20));
        revision++;
        foreach (ulong id in cluster.Members.Keys.Order().ToList())
        {
            var gone = cluster.Do(id, "range k-lease", s => s.RangeAsync(new RangeRequest { Key = Bytes("k-lease") }), r => $"{r.Count} at {r.Header.Revision}");
            Assert.That(gone.Count, Is.Zero, $"seed {seed}: member {id} still holds the expired lease's key");
        }

        // Compaction: reads below it fail on every member.
        long compactAt = revision - 3;
        cluster.Do(RandomMember(cluster), $"compact {compactAt}", s => s.CompactAsync(compactAt, physical: true), r => $"at {r.Header.Revision}");
        foreach (ulong id in cluster.Members.Keys.Order().ToList())
        {
            var old = cluster.Start(id, "range at 2", s => s.RangeAsync(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l"), Revision = 2 }), r => $"{r.Count}");
            cluster.RunUntil(() => old.IsCompleted, "read below the compaction");
            Assert.That(old.Exception?.InnerException, Is.InstanceOf<RevisionCompactedException>(), $"seed {seed}: member {id} read below the compaction point");
        }

        // A member cut off while the others write past the snapshot threshold catches up by a snapshot.
        cluster.Network.Isolate(lagging);
        cluster.Record($"isolate m{lagging}");
        ulong writer = cluster.Members.Keys.First(id => id != lagging);
        for (int i = 0; i < 30; i++)
        {
            string key = $"k{random.Next(6)}";
            var put = cluster.Do(writer, $"put {key} while m{lagging} is cut off", s => s.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"w{i}") }), r => $"rev {r.Header.Revision}");
            revision = put.Header.Revision;
        }

        cluster.Network.Heal();
        cluster.Record("heal");
        var catchingUp = cluster[lagging];
        cluster.RunUntil(() => catchingUp.SnapshotsRestored > 0 && catchingUp.Status.Revision == revision, $"member {lagging} catching up by a snapshot");

        // That member crashes (unsynced writes lost or torn) and restarts from its disk.
        cluster.Crash(lagging);
        cluster.Do(writer, "put k9 while one member is down", s => s.PutAsync(new PutRequest { Key = Bytes("k9"), Value = Bytes("down") }), r => $"rev {r.Header.Revision}");
        revision++;
        cluster.Start(lagging);
        var afterRestart = cluster.Do(lagging, "range k9 after restart", s => s.RangeAsync(new RangeRequest { Key = Bytes("k9") }), r => $"{r.Count} at {r.Header.Revision}");
        Assert.That(afterRestart.Count, Is.EqualTo(1), $"seed {seed}: the restarted member {lagging} reads the write made while it was down");

        // Every member at the same revision holds the same history.
        var hashes = cluster.Members.Keys.Order().ToList().Select(id => cluster.Do(id, $"hash at {revision}", s => s.HashKVAsync(revision), r => $"{r.Hash:x8} compact {r.CompactRevision}").Hash).ToList();
        Assert.That(hashes.Distinct().Count(), Is.EqualTo(1), $"seed {seed}: members' hashes at revision {revision}: {string.Join(", ", hashes)}");

        // The watch saw every revision, in order, once.
        cluster.RunUntil(() => events.Count > 0 && events[^1].Kv.ModRevision == revision, $"the watch on member {watching} reaching revision {revision}");
        stopWatching.Cancel();
        cluster.Run(watch, "the watch ending");
        var seen = events.Select(e => e.Kv.ModRevision).Distinct().ToList();
        Assert.That(seen, Is.EqualTo(Enumerable.Range(2, (int)revision - 1).Select(r => (long)r).ToList()), $"seed {seed}: the watch's revisions");
        cluster.StopAll();
        Assert.That(cluster.OffThreadEvents, Is.Empty, $"seed {seed}: library work escaped the scheduler's thread (first: {(cluster.OffThreadEvents.Count > 0 ? cluster.OffThreadEvents[0] : "none")})");
        return (cluster.TraceHash, [.. cluster.Trace]);
    }

    private static ulong RandomMember(DeterministicCluster cluster)
    {
        var ids = cluster.Members.Keys.Order().ToList();
        return ids[cluster.Random.Next(ids.Count)];
    }

    private static string Text(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    private static (string Hash, IReadOnlyList<string> Trace) RunPuts(int seed)
    {
        using var cluster = new DeterministicCluster(seed, 3);
        cluster.StartAll();
        for (int i = 0; i < 12; i++)
        {
            ulong via = (ulong)cluster.Random.Next(1, 4);
            string key = $"k{cluster.Random.Next(4)}";
            var put = cluster.Do(via, $"put {key}={i}", s => s.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"{i}") }), r => $"rev {r.Header.Revision}");
            Assert.That(put.Header.Revision, Is.EqualTo(i + 2), $"seed {seed}: the {i}th put's revision");
        }

        foreach (ulong id in cluster.Members.Keys.Order().ToList())
        {
            var read = cluster.Do(id, "range k", s => s.RangeAsync(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l") }), r => $"{r.Count} keys at {r.Header.Revision}");
            Assert.That(read.Header.Revision, Is.EqualTo(13), $"seed {seed}: member {id} reads every put (linearizable)");
        }

        cluster.StopAll();
        Assert.That(cluster.OffThreadEvents, Is.Empty, $"seed {seed}: library work escaped the scheduler's thread (first: {(cluster.OffThreadEvents.Count > 0 ? cluster.OffThreadEvents[0] : "none")})");
        return (cluster.TraceHash, [.. cluster.Trace]);
    }

    /// <summary>Where two traces part: the first differing line of each, with the lines before it.</summary>
    internal static string FirstDifference(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        int i = 0;
        while (i < a.Count && i < b.Count && a[i] == b[i])
        {
            i++;
        }

        string before = string.Join("\n", a.Skip(Math.Max(0, i - 5)).Take(Math.Min(i, 5)));
        return $"they part at line {i} of {a.Count}/{b.Count}, after:\n{before}\nfirst: {(i < a.Count ? a[i] : "(end)")}\nsecond: {(i < b.Count ? b[i] : "(end)")}";
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);
}
