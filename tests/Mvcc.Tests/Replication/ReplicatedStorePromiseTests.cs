using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Promises docs/architecture.md and <see cref="ReplicatedStore"/>'s documentation make that no other
/// test checked (session 24's read of the public API against the docs), each through the public API:
/// lease reads are linearizable; disposing a member ends its watches after what they buffered and
/// refuses every later call; a request etcd's checks refuse never enters the log.
/// </summary>
public sealed class ReplicatedStorePromiseTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 2410, 1);

    /// <summary>
    /// docs/architecture.md, "Replicated leases": "<c>LeaseTimeToLiveAsync</c> and <c>LeaseLeasesAsync</c>
    /// are linearizable: a read barrier, then this member's lessor". A follower cut off from the
    /// leader while the majority revokes a lease still holds the lease and its key in its own store;
    /// a lease read there must not answer from it, and the first answer after healing must show the
    /// revocation.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task LeaseReadsOnAFollowerCutOffFromTheRevocationRefuseToAnswerAndAfterHealingSeeIt(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");

        // A short read timeout: the cut-off member's reads fail fast instead of waiting long.
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, o => o with { Raft = o.Raft with { ReadIndexTimeout = TimeSpan.FromMilliseconds(300) } });
        ulong leaderId = cluster.LeaderId();
        ulong followerId = cluster.FollowerIds().First();
        var leader = cluster[leaderId];
        var follower = cluster[followerId];
        var grant = await ReplicatedReadTests.ClientAsync(() => leader.LeaseGrantAsync(600), cluster.Describe, "the grant");
        await ReplicatedReadTests.ClientAsync(() => leader.PutAsync(new PutRequest { Key = Key("lock"), Value = Key("held"), Lease = grant.Id }), cluster.Describe, "the leased put");
        var before = await ReplicatedReadTests.ClientAsync(() => follower.LeaseTimeToLiveAsync(grant.Id, keys: true), cluster.Describe, "the follower's TTL read");
        Assert.That((before.TtlSeconds > 0, before.Keys.Count), Is.EqualTo((true, 1)), "the follower sees the lease and its key");

        cluster.Network.Isolate(followerId);
        await ReplicatedReadTests.ClientAsync(() => leader.LeaseRevokeAsync(grant.Id), cluster.Describe, "the revocation by the majority");

        // The follower's own state is stale: its store still holds the leased key...
        var local = await follower.RangeAsync(new RangeRequest { Key = Key("lock") }, ReadConsistency.Serializable).AsTask().OrFailAsync("the serializable read", cluster.Describe);
        Assert.That(local.Kvs, Has.Count.EqualTo(1), "the cut-off follower never applied the revocation");

        // ...so a linearizable lease read there must fail rather than answer from it.
        var ttlRead = Assert.CatchAsync(() => follower.LeaseTimeToLiveAsync(grant.Id).AsTask().OrFailAsync("the cut-off TTL read", cluster.Describe));
        Assert.That(ttlRead is TimeoutException or NoLeaderException, Is.True, $"the cut-off TTL read: {ttlRead}");
        var listRead = Assert.CatchAsync(() => follower.LeaseLeasesAsync().AsTask().OrFailAsync("the cut-off lease list", cluster.Describe));
        Assert.That(listRead is TimeoutException or NoLeaderException, Is.True, $"the cut-off lease list: {listRead}");

        cluster.Network.Heal();
        var after = await ReplicatedReadTests.ClientAsync(() => follower.LeaseTimeToLiveAsync(grant.Id), cluster.Describe, "the TTL read after healing");
        Assert.That(after.TtlSeconds, Is.EqualTo(-1), "the first answer after healing shows the revocation");
        var leases = await ReplicatedReadTests.ClientAsync(() => follower.LeaseLeasesAsync(), cluster.Describe, "the lease list after healing");
        Assert.That(leases.Leases, Does.Not.Contain(grant.Id));
    }

    /// <summary>
    /// <see cref="ReplicatedStore.DisposeAsync"/>: "Stops the member ... Watches end. Idempotent."; and
    /// docs/architecture.md, "Watches": a watch ends with <see cref="ObjectDisposedException"/> when
    /// its store is disposed, after the responses it already buffered. A consumer waiting in its
    /// <c>await foreach</c> must wake, and nothing may hang on a stopped member.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task DisposingAMemberEndsItsWatchesAfterWhatTheyBufferedWakesAWaitingConsumerAndRefusesEveryLaterCall(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        ulong followerId = cluster.FollowerIds().First();
        var follower = cluster[followerId];

        // One watch with two events buffered and not read; one whose consumer already waits for more.
        using var buffered = follower.Watch(new WatchRequest { Key = Key("d/"), RangeEnd = Key("d0"), StartRevision = follower.Status.Revision + 1 });
        using var waiting = follower.Watch(new WatchRequest { Key = Key("quiet") });
        await using var waitingResponses = waiting.GetAsyncEnumerator();
        var waitingNext = waitingResponses.MoveNextAsync().AsTask();
        var first = await ReplicatedReadTests.ClientAsync(() => follower.PutAsync(new PutRequest { Key = Key("d/1"), Value = Key("1") }), cluster.Describe, "put d/1");
        await ReplicatedReadTests.ClientAsync(() => follower.PutAsync(new PutRequest { Key = Key("d/2"), Value = Key("2") }), cluster.Describe, "put d/2");
        Assert.That(waitingNext.IsCompleted, Is.False, "nothing was written to the quiet key");

        await follower.DisposeAsync().AsTask().OrFailAsync("the member's disposal", cluster.Describe);
        await follower.DisposeAsync().AsTask().OrFailAsync("a second disposal (idempotent)", cluster.Describe);

        var thrown = Assert.CatchAsync(async () => await waitingNext.OrFailAsync("the waiting consumer to wake"));
        Assert.That(thrown, Is.InstanceOf<ObjectDisposedException>(), "a consumer waiting for a response ends with the store's disposal");

        await using var bufferedResponses = buffered.GetAsyncEnumerator();
        var events = new List<string>();
        Exception? end = null;
        try
        {
            while (await bufferedResponses.MoveNextAsync().AsTask().OrFailAsync("the buffered watch"))
            {
                events.AddRange(bufferedResponses.Current.Events.Select(e => $"{Text(e.Kv.Key)}@{e.Kv.ModRevision}"));
            }
        }
        catch (ObjectDisposedException e)
        {
            end = e;
        }

        Assert.That(events, Is.EqualTo(new[] { $"d/1@{first.Header.Revision}", $"d/2@{first.Header.Revision + 1}" }), "what the watch buffered is delivered first");
        Assert.That(end, Is.InstanceOf<ObjectDisposedException>(), "then the watch ends with the disposal");

        // Every later call is refused at once (the member stopped), none hangs.
        var calls = new (string What, Func<Task> Call)[]
        {
            ("a put", () => follower.PutAsync(new PutRequest { Key = Key("d/3"), Value = Key("3") }).AsTask().OrFailAsync("a put")),
            ("a linearizable read", () => follower.RangeAsync(new RangeRequest { Key = Key("d/1") }).AsTask().OrFailAsync("a linearizable read")),
            ("a serializable read", () => follower.RangeAsync(new RangeRequest { Key = Key("d/1") }, ReadConsistency.Serializable).AsTask().OrFailAsync("a serializable read")),
            ("a lease grant", () => follower.LeaseGrantAsync(60).AsTask().OrFailAsync("a lease grant")),
        };
        foreach (var (what, call) in calls)
        {
            var refused = Assert.CatchAsync(() => call(), what);
            Assert.That(refused is ObjectDisposedException or NodeStoppedException, Is.True, $"{what} on the disposed member: {refused}");
        }

        Assert.That(() => follower.Watch(new WatchRequest { Key = Key("d/1") }), Throws.InstanceOf<ObjectDisposedException>());
    }

    /// <summary>
    /// docs/architecture.md, "Replicated store": "Requests are validated (etcd's checks,
    /// <c>MaxRequestBytes</c>) before they are proposed, so a refusable request never enters the
    /// log." Each refusal below, on a follower and on the leader, must leave every member's log where
    /// it was (no entry appended, so none applied) as well as the revision.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task RequestsEtcdsChecksRefuseAreRefusedBeforeTheyEnterTheLog(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        await ReplicatedReadTests.ClientAsync(() => cluster[cluster.LeaderId()].PutAsync(new PutRequest { Key = Key("k"), Value = Key("v") }), cluster.Describe, "a first put");
        await cluster.WaitForAppliedAsync(cluster[cluster.LeaderId()].Status.RaftIndex);

        var refusals = new (string What, Func<ReplicatedStore, Task> Call, MvccError Error)[]
        {
            ("put of an empty key", s => s.PutAsync(new PutRequest { Key = ReadOnlyMemory<byte>.Empty, Value = Key("v") }).AsTask(), MvccError.EmptyKey),
            ("put larger than MaxRequestBytes", s => s.PutAsync(new PutRequest { Key = Key("big"), Value = new byte[MvccStoreOptions.DefaultMaxRequestBytes] }).AsTask(), MvccError.RequestTooLarge),
            ("delete of an empty key", s => s.DeleteRangeAsync(new DeleteRangeRequest { Key = ReadOnlyMemory<byte>.Empty }).AsTask(), MvccError.EmptyKey),
            ("txn with more than MaxTxnOps operations", s => s.TxnAsync(new TxnRequest { Success = [.. Enumerable.Range(0, MvccStoreOptions.DefaultMaxTxnOps + 1).Select(i => RequestOp.Put(new PutRequest { Key = Key($"t/{i}"), Value = Key("v") }))] }).AsTask(), MvccError.TooManyOps),
            ("txn putting one key twice", s => s.TxnAsync(new TxnRequest { Success = [RequestOp.Put(new PutRequest { Key = Key("dup"), Value = Key("1") }), RequestOp.Put(new PutRequest { Key = Key("dup"), Value = Key("2") })] }).AsTask(), MvccError.DuplicateKey),
            ("lease grant above the maximum TTL", s => s.LeaseGrantAsync(LeaseOptions.MaxTtlSeconds + 1).AsTask(), MvccError.LeaseTtlTooLarge),
        };

        // A leader change appends an empty entry of its own; the check is repeated if one came in between.
        for (int attempt = 1; ; attempt++)
        {
            var before = cluster.Members.ToDictionary(m => m.Key, m => m.Value.Status);
            foreach (var member in new[] { cluster.FollowerIds().First(), cluster.LeaderId() })
            {
                foreach (var (what, call, error) in refusals)
                {
                    var refused = Assert.CatchAsync<MvccException>(async () => await call(cluster[member]).OrFailAsync(what, cluster.Describe), $"member {member}: {what}");
                    Assert.That(refused!.Error, Is.EqualTo(error), $"member {member}: {what}");
                }
            }

            var after = cluster.Members.ToDictionary(m => m.Key, m => m.Value.Status);
            if (after.Any(a => a.Value.RaftTerm != before[a.Key].RaftTerm) && attempt < 3)
            {
                TestContext.Out.WriteLine($"attempt {attempt}: the term changed meanwhile; again");
                await cluster.WaitForLeaderAsync();
                continue;
            }

            foreach (var (id, status) in after)
            {
                // A refusal at apply would have answered only once applied on the member called: its applied index would have moved.
                Assert.That((status.RaftIndex, status.RaftAppliedIndex, status.Revision), Is.EqualTo((before[id].RaftIndex, before[id].RaftAppliedIndex, before[id].Revision)), $"member {id}: a refused request entered the log or wrote");
            }

            return;
        }
    }
}
