using System.Collections.Concurrent;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using Microsoft.Extensions.Time.Testing;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Leases under Raft: granted, kept alive and revoked from any member; expired only by the leader,
/// each expired lease's keys deleted exactly once in the history every member watches, across a
/// leader change; and a partitioned old leader, which still believes it leads, revokes nothing.
/// </summary>
public sealed class ReplicatedLeaseTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1700, 2);

    /// <summary>Short TTLs and a quick expiry check, so expiry happens within a test.</summary>
    private static ReplicatedStoreOptions QuickLeases(ReplicatedStoreOptions options) => options with
    {
        Store = options.Store with
        {
            Leases = options.Store.Leases with { MinTtlSeconds = 1, ExpiryCheckInterval = TimeSpan.FromMilliseconds(50), ExpiredReportRetryInterval = TimeSpan.FromMilliseconds(500) },
        },
    };

    /// <summary>How far lease time moves after each round of keep-alives: a quarter of the shortest TTL (1 s).</summary>
    private static readonly TimeSpan s_keepAliveStep = TimeSpan.FromMilliseconds(250);

    /// <summary>Lease expiry measured on <paramref name="clock"/> (the member's lease time only: Raft and the expiry checks run on real time).</summary>
    private static ReplicatedStoreOptions WithLeaseClock(ReplicatedStoreOptions options, FakeTimeProvider clock) =>
        options with { Store = options.Store with { Leases = options.Store.Leases with { TimeProvider = clock } } };

    private static readonly WatchRequest s_leaseKeys = new() { Key = Key("l/"), RangeEnd = Key("l0"), StartRevision = 1 };

    [Test]
    public async Task LeasesAreGrantedKeptAliveReadAndRevokedFromEveryMember()
    {
        await using var cluster = await ReplicatedCluster.StartAsync(3, 1701, QuickLeases);
        var ids = cluster.Members.Keys.ToArray();
        foreach (var id in ids)
        {
            var member = cluster[id];
            var grant = await member.LeaseGrantAsync(60);
            Assert.That(grant.Id, Is.Positive, $"member {id} chose an id");
            Assert.That(grant.Header.MemberId, Is.EqualTo(id), "the header names the member that answered");
            var other = cluster[ids[(Array.IndexOf(ids, id) + 1) % ids.Length]];
            await other.PutAsync(new PutRequest { Key = Key($"l/{id}"), Value = Key("v"), Lease = grant.Id });

            foreach (var reader in ids)
            {
                var ttl = await cluster[reader].LeaseTimeToLiveAsync(grant.Id, keys: true);
                Assert.That(ttl.GrantedTtlSeconds, Is.EqualTo(60), $"member {reader} knows lease {grant.Id}");
                Assert.That(ttl.Keys.Select(k => Text(k)), Is.EqualTo(new[] { $"l/{id}" }), $"member {reader} knows its key");
                Assert.That((await cluster[reader].LeaseKeepAliveAsync(grant.Id)).TtlSeconds, Is.EqualTo(60), $"a keep-alive from member {reader}");
                Assert.That((await cluster[reader].LeaseLeasesAsync()).Leases, Does.Contain(grant.Id));
            }

            await cluster[ids[(Array.IndexOf(ids, id) + 2) % ids.Length]].LeaseRevokeAsync(grant.Id);
            foreach (var reader in ids)
            {
                Assert.That((await cluster[reader].RangeAsync(new RangeRequest { Key = Key($"l/{id}") })).Kvs, Is.Empty, $"member {reader}: the key went with its lease");
                Assert.That((await cluster[reader].LeaseTimeToLiveAsync(grant.Id)).TtlSeconds, Is.EqualTo(-1), $"member {reader}: the lease is gone");
            }

            var missing = Assert.ThrowsAsync<MvccException>(async () => await member.LeaseKeepAliveAsync(grant.Id))!;
            Assert.That(missing.Error, Is.EqualTo(MvccError.LeaseNotFound), "a keep-alive of a revoked lease");
        }

        var taken = await cluster[ids[0]].LeaseGrantAsync(60, id: 4242);
        var again = Assert.ThrowsAsync<MvccException>(async () => await cluster[ids[1]].LeaseGrantAsync(60, id: 4242))!;
        Assert.That(again.Error, Is.EqualTo(MvccError.LeaseExists), "an id in use, granted from another member");
        Assert.That(taken.Id, Is.EqualTo(4242L));
    }

    [TestCaseSource(nameof(Seeds))]
    public async Task OnlyTheLeaderExpiresLeasesAndEachExpiredLeasesKeysAreDeletedOnceAcrossALeaderChange(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);

        // Lease time is one manual clock, moved by this test only after the kept leases' keep-alives
        // were applied on every member (Raft runs on real time): on real time a loaded machine could
        // let a 2 s lease kept alive every 250 ms run out between two keep-alives.
        var leaseTime = new FakeTimeProvider();
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, o => WithLeaseClock(QuickLeases(o), leaseTime));
        var ids = cluster.Members.Keys.ToArray();
        var leadersSeen = new ConcurrentDictionary<ulong, bool>();
        using var stopObserving = new CancellationTokenSource();
        var observers = ids.Select(id => ObserveLeadersAsync(cluster[id], leadersSeen, stopObserving.Token)).ToArray();
        var watches = ids.ToDictionary(id => id, id => new RecordedWatch(cluster[id].Watch(s_leaseKeys)));

        // Six leases with two keys each, from random members; the first three are kept alive.
        const int Leases = 6;
        var leases = new long[Leases];
        for (int i = 0; i < Leases; i++)
        {
            leases[i] = (await cluster[ids[random.Next(ids.Length)]].LeaseGrantAsync(2)).Id;
            foreach (string suffix in (string[])["a", "b"])
            {
                await cluster[ids[random.Next(ids.Length)]].PutAsync(new PutRequest { Key = Key($"l/{i}/{suffix}"), Value = Key("v"), Lease = leases[i] });
            }
        }

        using var stopKeeping = new CancellationTokenSource();
        var keeper = KeepAliveAsLeaseTimePassesAsync(cluster, ids, leases[..3], [leaseTime], random.Next(), stopKeeping.Token);

        // The other three expire under the first leader.
        var leaderWatch = watches[cluster.LeaderId()];
        await leaderWatch.UntilDeletedAsync( Enumerable.Range(3, 3).SelectMany(i => new[] { $"l/{i}/a", $"l/{i}/b" }));

        // A leader change: the kept leases survive it (the new leader restarts every TTL first).
        ulong first = cluster.LeaderId();
        ulong next = ids.Where(id => id != first).ElementAt(random.Next(ids.Length - 1));
        await cluster[next].TransferLeadershipAsync(next).AsTask().WaitAsync(Waits.Limit);
        Assert.That(await cluster.WaitForLeaderAsync(), Is.EqualTo(next));
        foreach (var id in ids)
        {
            var alive = await cluster[id].LeaseLeasesAsync();
            Assert.That(alive.Leases, Is.EquivalentTo(leases[..3]), $"member {id}: the kept leases survived the leader change, the others are gone");
        }

        // Then they are no longer kept alive and expire under the new leader.
        await stopKeeping.CancelAsync();
        await keeper;
        leaseTime.Advance(TimeSpan.FromSeconds(3));
        await leaderWatch.UntilDeletedAsync(Enumerable.Range(0, 3).SelectMany(i => new[] { $"l/{i}/a", $"l/{i}/b" }));

        // Every member's watch saw the same history: each key put once and deleted exactly once,
        // a lease's two keys in one revision.
        ulong leader = cluster.LeaderId();
        long final = (await cluster[leader].RangeAsync(new RangeRequest { Key = Key("l/") })).Header.Revision;
        List<string>? reference = null;
        foreach (var id in ids)
        {
            var events = await watches[id].ThroughAsync(final);
            var deletes = events.Where(e => e.Type == WatchEventType.Delete).ToList();
            Assert.That(deletes.Select(e => Text(e.Kv.Key)), Is.EquivalentTo(Enumerable.Range(0, Leases).SelectMany(i => new[] { $"l/{i}/a", $"l/{i}/b" })), $"member {id}: every key deleted exactly once");
            for (int i = 0; i < Leases; i++)
            {
                Assert.That(deletes.Where(e => Text(e.Kv.Key).StartsWith($"l/{i}/", StringComparison.Ordinal)).Select(e => e.Kv.ModRevision).Distinct().Count(), Is.EqualTo(1), $"member {id}: lease {i}'s keys deleted in one revision");
            }

            var shown = events.Select(e => $"{e.Type} {Text(e.Kv.Key)}@{e.Kv.ModRevision}").ToList();
            reference ??= shown;
            Assert.That(shown, Is.EqualTo(reference), $"member {id} saw the same history");
        }

        foreach (var watch in watches.Values)
        {
            await watch.DisposeAsync();
        }

        await stopObserving.CancelAsync();
        await Task.WhenAll(observers);
        foreach (var id in ids)
        {
            if (!leadersSeen.ContainsKey(id))
            {
                Assert.That(cluster[id].ExpiryRevocationsProposed, Is.Zero, $"member {id} never led and proposed no expiry");
            }
        }

        Assert.That(cluster[first].ExpiryRevocationsCommitted, Is.GreaterThanOrEqualTo(3), "the first leader expired the three it saw run out");
        Assert.That(cluster[next].ExpiryRevocationsCommitted, Is.GreaterThanOrEqualTo(3), "the new leader expired the three left");
    }

    [Test]
    public async Task APartitionedOldLeaderThatStillBelievesItLeadsRevokesNothing()
    {
        // Lease time is each member's own manual clock, moved only by this test (Raft still runs on
        // real time): the old leader's jumps two TTLs once it is cut off, the majority's moves a
        // quarter TTL at a time and only after a keep-alive was applied on both of its members. So
        // the old leader always finds the lease expired and the majority never does, however slowly
        // a loaded machine runs the keep-alives (on real time a 1 s lease expired there under load).
        var leaseClocks = new Dictionary<ulong, FakeTimeProvider>();
        // Without CheckQuorum the isolated leader stays leader of its term: its lessor stays primary
        // and it decides the lease expired, since keep-alives no longer reach it.
        await using var cluster = await ReplicatedCluster.StartAsync(3, 1702, o =>
        {
            if (!leaseClocks.TryGetValue(o.MemberId, out var clock))
            {
                clock = new FakeTimeProvider();
                leaseClocks[o.MemberId] = clock;
            }

            var quick = WithLeaseClock(QuickLeases(o), clock);
            return quick with { Raft = quick.Raft with { Raft = quick.Raft.Raft with { CheckQuorum = false } } };
        });
        ulong old = cluster.LeaderId();
        var others = cluster.Members.Keys.Where(id => id != old).ToArray();
        long lease = (await cluster[old].LeaseGrantAsync(1)).Id;
        await cluster[old].PutAsync(new PutRequest { Key = Key("l/held"), Value = Key("v"), Lease = lease });
        using var watch = cluster[others[0]].Watch(new WatchRequest { Key = Key("l/held"), StartRevision = 1 });

        cluster.Network.Isolate(old);

        // The old leader's lessor runs out and it proposes the revocation, which cannot commit.
        leaseClocks[old].Advance(TimeSpan.FromSeconds(2));
        await cluster[old].FirstExpiryProposed.WaitAsync(Waits.Limit);

        // Meanwhile the majority elects a leader of its own and keeps the lease alive through three
        // TTLs of its lease time.
        var random = new Random(1702);
        for (int step = 0; step < 12; step++)
        {
            await KeepAliveAppliedOnAsync(cluster, others, [lease], random);
            foreach (ulong id in others)
            {
                leaseClocks[id].Advance(s_keepAliveStep);
            }
        }

        Assert.That(cluster[old].Status.LeaderId, Is.EqualTo(old), "the isolated member still believes it leads");
        cluster.Network.Heal();
        var rejoined = await cluster.WaitForLeaderAsync();
        Assert.That(rejoined, Is.Not.EqualTo(old), "the majority's leader leads after the heal");
        Assert.That(cluster[old].ExpiryRevocationsCommitted, Is.Zero, "none of the old leader's revocations committed");
        Assert.That(cluster[rejoined].ExpiryRevocationsProposed, Is.Zero, "the majority's leader never found the lease kept alive expired");
        foreach (var id in cluster.Members.Keys)
        {
            var kvs = (await cluster[id].RangeAsync(new RangeRequest { Key = Key("l/held") })).Kvs;
            Assert.That(kvs, Has.Count.EqualTo(1), $"member {id} still has the key of the lease kept alive");
        }

        // The history holds the put and nothing after it.
        long now = (await cluster[rejoined].RangeAsync(new RangeRequest { Key = Key("l/held") })).Header.Revision;
        await using var recorded = new RecordedWatch(watch);
        var events = await recorded.ThroughAsync(now);
        Assert.That(events.Select(e => e.Type), Is.EqualTo(new[] { WatchEventType.Put }), "the key was never deleted");
    }

    /// <summary>
    /// Keeps <paramref name="leases"/> alive through random members of <paramref name="ids"/>, each
    /// round applied on all of them, and after each round moves <paramref name="clocks"/> (their lease
    /// time) on by <see cref="s_keepAliveStep"/>, until cancelled: a lease kept alive never sees more
    /// than a step of lease time pass since its last keep-alive, however slowly the machine runs
    /// the rounds, while leases not kept alive run out after their TTL of steps.
    /// </summary>
    private static async Task KeepAliveAsLeaseTimePassesAsync(ReplicatedCluster cluster, IReadOnlyList<ulong> ids, long[] leases, FakeTimeProvider[] clocks, int seed, CancellationToken stop)
    {
        var random = new Random(seed);
        while (!stop.IsCancellationRequested)
        {
            await KeepAliveAppliedOnAsync(cluster, ids, leases, random);
            foreach (var clock in clocks)
            {
                clock.Advance(s_keepAliveStep);
            }
        }
    }

    /// <summary>
    /// Keeps each of <paramref name="leases"/> alive through a random member of <paramref name="ids"/>
    /// and returns once every one of them has applied those keep-alives (a linearizable read on each),
    /// retrying through an election (no leader yet, a proposal lost with an old leader).
    /// </summary>
    private static async Task KeepAliveAppliedOnAsync(ReplicatedCluster cluster, IReadOnlyList<ulong> ids, long[] leases, Random random)
    {
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (true)
        {
            try
            {
                foreach (long lease in leases)
                {
                    await cluster[ids[random.Next(ids.Count)]].LeaseKeepAliveAsync(lease).AsTask().WaitAsync(Waits.Limit);
                }

                foreach (ulong id in ids)
                {
                    await cluster[id].RangeAsync(new RangeRequest { Key = Key("l/") }).AsTask().WaitAsync(Waits.Limit);
                }

                return;
            }
            catch (Exception e) when (e is Consensus.Host.NoLeaderException or Consensus.ProposalDroppedException or TimeoutException && DateTime.UtcNow < deadline)
            {
                // An election in progress: the round starts again.
            }
        }
    }

    private static async Task ObserveLeadersAsync(ReplicatedStore member, ConcurrentDictionary<ulong, bool> seen, CancellationToken stop)
    {
        try
        {
            await foreach (var change in member.LeaderChanges(stop))
            {
                if (change.LeaderId != 0)
                {
                    seen[change.LeaderId] = true;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>A watch whose every event is kept as it is read.</summary>
    private sealed class RecordedWatch(WatchStream stream) : IAsyncDisposable
    {
        private readonly IAsyncEnumerator<WatchResponse> _responses = stream.GetAsyncEnumerator();
        private long _throughRevision;

        public List<WatchEvent> Events { get; } = [];

        /// <summary>Reads until each of <paramref name="keys"/> was deleted (since this was called).</summary>
        public async Task UntilDeletedAsync(IEnumerable<string> keys)
        {
            var waiting = keys.ToHashSet();
            while (waiting.Count > 0)
            {
                foreach (var e in (await NextAsync()).Where(e => e.Type == WatchEventType.Delete))
                {
                    waiting.Remove(Text(e.Kv.Key));
                }
            }
        }

        /// <summary>Reads until a response covers <paramref name="revision"/>; returns every event read so far.</summary>
        public async Task<List<WatchEvent>> ThroughAsync(long revision)
        {
            while (_throughRevision < revision)
            {
                await NextAsync();
            }

            return Events;
        }

        public async ValueTask DisposeAsync()
        {
            await _responses.DisposeAsync();
            stream.Dispose();
        }

        private async Task<IReadOnlyList<WatchEvent>> NextAsync()
        {
            Assert.That(await _responses.MoveNextAsync().AsTask().WaitAsync(Waits.Limit), Is.True, "the watch ended");
            _throughRevision = _responses.Current.Header.Revision;
            Events.AddRange(_responses.Current.Events);
            return _responses.Current.Events;
        }
    }
}
