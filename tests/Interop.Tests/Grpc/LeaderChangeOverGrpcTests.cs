using EmbeddedRaft.Samples.EtcdCompatibleServer;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Mvccpb;
using Grpc.Core;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>
/// Streams across leader changes, as etcd's clients live through them: watches and lease keep-alives
/// while leadership moves (MoveLeader) and while the leader, or the member serving the stream, stops.
/// A stream either goes on or ends with UNAVAILABLE or INTERNAL (the codes etcd's clientv3 retries), after which the client does what etcd's
/// clientv3 does: opens it again on a member that answers (a watch from the revision after the last
/// one it received, a keep-alive with the next request).
/// </summary>
[TestFixture]
public sealed class LeaderChangeOverGrpcTests
{
    [Test]
    public async Task AWatchOnAFollowerDeliversExactlyTheCommittedHistoryAcrossALeaderChange()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        List<EtcdClusterMember> members = [.. cluster.Cluster.Members];
        ulong leaderId = members[0].Store.Status.LeaderId;
        EtcdClusterMember leader = members.Single(m => m.Info.Id == leaderId);
        EtcdClusterMember follower = members.First(m => m.Info.Id != leaderId);
        using var client = new EtcdClients(follower.ClientUrl);
        using var watch = new WatchCall(client);
        long id = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("lc/"), RangeEnd = Bytes("lc0") });

        for (int i = 0; i < 5; i++)
        {
            await client.PutRetryingAsync($"lc/before/{i}", "v");
        }

        await leader.DisposeAsync();
        for (int i = 0; i < 5; i++)
        {
            // Each put is retried through the election: a retry may apply a put twice (etcd's
            // clients have the same ambiguity), which the history check below allows for.
            await client.PutRetryingAsync($"lc/after/{i}", "v");
        }

        PutResponse last = await client.PutRetryingAsync("lc/zz-last", "v");
        Assert.That(follower.Store.Status.LeaderId, Is.Not.EqualTo(leaderId).And.Not.Zero, "a new leader took over");

        List<Event> events = [.. (await watch.ReadUntilAsync(r => r.SelectMany(x => x.Events).Any(e => e.Kv.Key.ToStringUtf8() == "lc/zz-last")))
            .Where(r => r.WatchId == id).SelectMany(r => r.Events)];

        // The committed history, read independently: every key's versions, from the store's ranges.
        RangeResponse now = await client.Kv.RangeAsync(new RangeRequest { Key = Bytes("lc/"), RangeEnd = Bytes("lc0"), Revision = last.Header.Revision });
        Assert.That(events.Select(e => e.Kv.ModRevision), Is.Ordered.Ascending.And.Unique, "in revision order, none twice");
        Assert.That(events.All(e => e.Type == Event.Types.EventType.Put), Is.True);
        Assert.That(events.Select(e => e.Kv.Key.ToStringUtf8()).Distinct(), Is.EquivalentTo(now.Kvs.Select(kv => kv.Key.ToStringUtf8())), "every committed key, and only those");
        foreach (KeyValue kv in now.Kvs)
        {
            List<Event> ofKey = [.. events.Where(e => e.Kv.Key == kv.Key)];
            Assert.That(ofKey, Has.Count.EqualTo(kv.Version), $"{kv.Key.ToStringUtf8()}: one event per version");
            Assert.That(ofKey[^1].Kv.ModRevision, Is.EqualTo(kv.ModRevision));
            Assert.That(ofKey[0].Kv.CreateRevision, Is.EqualTo(kv.CreateRevision));
        }
    }

    [Test]
    public async Task WatchesOnTheLeaderAndOnAFollowerDeliverTheCommittedHistoryWhileLeadershipMovesAndTheServingMemberStops()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        List<EtcdClusterMember> members = [.. cluster.Cluster.Members];
        EtcdClusterMember leader = members.Single(m => m.Info.Id == members[0].Store.Status.LeaderId);
        EtcdClusterMember follower = members.First(m => m != leader);
        EtcdClusterMember third = members.First(m => m != leader && m != follower);
        using var onLeader = new ResumingWatch([leader, third], "mv/");
        using var onFollower = new ResumingWatch([follower, third], "mv/");
        await onLeader.StartAsync();
        await onFollower.StartAsync();
        using var writer = new EtcdClients(third.ClientUrl);
        for (int i = 0; i < 5; i++)
        {
            await writer.PutRetryingAsync($"mv/a/{i}", "v");
        }

        // Leadership moves to the follower (etcd's MoveLeader, on the leader): both streams go on.
        using (var leaderClient = new EtcdClients(leader.ClientUrl))
        {
            await leaderClient.Maintenance.MoveLeaderAsync(new MoveLeaderRequest { TargetID = follower.Info.Id });
        }

        Assert.That(follower.Store.Status.LeaderId, Is.EqualTo(follower.Info.Id));
        for (int i = 0; i < 5; i++)
        {
            await writer.PutRetryingAsync($"mv/b/{i}", "v");
        }

        // The new leader stops: the watch it served ends and its client resumes on the third member.
        await follower.DisposeAsync();
        for (int i = 0; i < 5; i++)
        {
            await writer.PutRetryingAsync($"mv/c/{i}", "v");
        }

        PutResponse last = await writer.PutRetryingAsync("mv/zz-last", "v");
        RangeResponse now = await writer.Kv.RangeAsync(new RangeRequest { Key = Bytes("mv/"), RangeEnd = Bytes("mv0"), Revision = last.Header.Revision });
        foreach (ResumingWatch watch in new[] { onLeader, onFollower })
        {
            List<Event> events = await watch.ReadUntilAsync("mv/zz-last");
            AssertExactHistory(events, now, watch.Name);
        }

        Assert.That(onLeader.Resumptions, Is.Zero, "the old leader's watch went on through the move (its member never stopped)");
        Assert.That(onFollower.Resumptions, Is.GreaterThan(0), "the stopped member's watch was resumed elsewhere");
        Assert.That(onFollower.EndStatuses, Is.All.AnyOf(StatusCode.Unavailable, StatusCode.Internal),
            "a stopped member's stream ends UNAVAILABLE (server stopped, connection reset) or INTERNAL (the HTTP/2 connection closed under it): the two codes etcd's clientv3 retries (isHaltErr)");
    }

    [Test]
    public async Task AKeepAliveStreamRenewsTheLeaseWhileLeadershipMovesAndTheLeaderStops()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        List<EtcdClusterMember> members = [.. cluster.Cluster.Members];
        EtcdClusterMember leader = members.Single(m => m.Info.Id == members[0].Store.Status.LeaderId);
        EtcdClusterMember follower = members.First(m => m != leader);
        EtcdClusterMember third = members.First(m => m != leader && m != follower);
        using var client = new EtcdClients(follower.ClientUrl);

        // A short TTL: the lease outlives the test only if the keep-alives keep renewing it. The client
        // renews every second (see RenewForAsync), so a lease expires only if no keep-alive gets
        // through for four seconds: an election, a reconnect and a busy machine fit in that.
        const long Ttl = 5;
        LeaseGrantResponse lease = await client.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = Ttl });
        await client.Kv.PutAsync(new PutRequest { Key = Bytes("ka/key"), Value = Bytes("v"), Lease = lease.ID });
        using var keepAlive = new ResumingKeepAlive([follower, third], lease.ID);
        var started = DateTime.UtcNow;
        await keepAlive.RenewForAsync(TimeSpan.FromSeconds(Ttl), Ttl);

        // Leadership moves away from the leader to the third member: the stream on the follower goes on.
        using (var leaderClient = new EtcdClients(leader.ClientUrl))
        {
            await leaderClient.Maintenance.MoveLeaderAsync(new MoveLeaderRequest { TargetID = third.Info.Id });
        }

        await keepAlive.RenewForAsync(TimeSpan.FromSeconds(Ttl), Ttl);

        // The leader (now the third member) stops: the client keeps renewing through the election.
        await third.DisposeAsync();
        await keepAlive.RenewForAsync(TimeSpan.FromSeconds(Ttl), Ttl);

        Assert.That(DateTime.UtcNow - started, Is.GreaterThan(TimeSpan.FromSeconds(3 * Ttl)), "the lease lived three TTLs");
        LeaseTimeToLiveResponse ttl = await client.Lease.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = lease.ID, Keys = true });
        Assert.That(ttl.TTL, Is.InRange(1, Ttl), "renewed, not expired");
        Assert.That(ttl.Keys.Select(k => k.ToStringUtf8()), Is.EqualTo(new[] { "ka/key" }));
        Assert.That((await client.Kv.RangeAsync(new RangeRequest { Key = Bytes("ka/key") })).Kvs, Has.Count.EqualTo(1), "its key is still there");
        Assert.That(keepAlive.EndStatuses, Is.All.AnyOf(StatusCode.Unavailable, StatusCode.Internal), "a keep-alive stream only ever ended with a code etcd's clientv3 retries (isHaltErr)");
        TestContext.Out.WriteLine($"keep-alive: {keepAlive.Renewals} renewals, {keepAlive.EndStatuses.Count} stream restarts");
    }

    /// <summary>Every committed put of <paramref name="now"/>'s keys exactly once, in revision order.</summary>
    private static void AssertExactHistory(List<Event> events, RangeResponse now, string who)
    {
        Assert.That(events.Select(e => e.Kv.ModRevision), Is.Ordered.Ascending.And.Unique, $"{who}: in revision order, none twice");
        Assert.That(events.Select(e => e.Kv.Key.ToStringUtf8()).Distinct(), Is.EquivalentTo(now.Kvs.Select(kv => kv.Key.ToStringUtf8())), $"{who}: every committed key, and only those");
        foreach (KeyValue kv in now.Kvs)
        {
            List<Event> ofKey = [.. events.Where(e => e.Kv.Key == kv.Key)];
            Assert.That(ofKey, Has.Count.EqualTo(kv.Version), $"{who}: {kv.Key.ToStringUtf8()}: one event per version");
            Assert.That(ofKey[^1].Kv.ModRevision, Is.EqualTo(kv.ModRevision));
        }
    }

    /// <summary>
    /// A prefix watch as etcd's clientv3 keeps one: on the first member of its list that answers; when
    /// the stream ends UNAVAILABLE it is created again on the next member, from the revision after
    /// the last event received (so nothing is lost or repeated). Bounded: 100 resumptions.
    /// </summary>
    private sealed class ResumingWatch(IReadOnlyList<EtcdClusterMember> members, string prefix) : IDisposable
    {
        private readonly List<Event> _events = [];
        private int _member;
        private long _nextRevision;
        private EtcdClients? _client;
        private WatchCall? _call;

        public string Name => $"watch first served by {members[0].Info.Name}";

        public int Resumptions { get; private set; }

        public List<StatusCode> EndStatuses { get; } = [];

        public async Task StartAsync()
        {
            _client = new EtcdClients(members[_member].ClientUrl);
            _call = new WatchCall(_client);
            await _call.CreateAsync(new WatchCreateRequest { Key = Bytes(prefix), RangeEnd = Bytes(prefix[..^1] + (char)(prefix[^1] + 1)), StartRevision = _nextRevision });
            WatchResponse created = await _call.NextAsync();
            Assert.That(created.Created, Is.True, $"expected the created response, got {created}");

            // clientv3's rule: a new watch starts after the created response's revision; a resumed one
            // after the last revision received.
            _nextRevision = Math.Max(_nextRevision, created.Header.Revision + 1);
        }

        public async Task<List<Event>> ReadUntilAsync(string lastKey)
        {
            while (!_events.Any(e => e.Kv.Key.ToStringUtf8() == lastKey))
            {
                try
                {
                    WatchResponse response = await _call!.NextAsync();
                    _events.AddRange(response.Events);
                    if (response.Events.Count > 0)
                    {
                        _nextRevision = response.Events[^1].Kv.ModRevision + 1;
                    }
                }
                catch (RpcException e) when (Resumptions < 100)
                {
                    TestContext.Out.WriteLine($"{Name} on {members[_member].Info.Name} ended: {e.StatusCode} {e.Status.Detail}");
                    EndStatuses.Add(e.StatusCode);
                    Resumptions++;
                    Dispose();
                    _member = (_member + 1) % members.Count;
                    await StartAsync();
                }
            }

            return _events;
        }

        public void Dispose()
        {
            _call?.Dispose();
            _client?.Dispose();
        }
    }

    /// <summary>
    /// A lease kept alive as etcd's clientv3 does: a request every TTL/3 on one stream; when the stream
    /// ends (UNAVAILABLE during an election, or its member stopped) a new one is opened, on the next
    /// member when that one answers nothing. Bounded: 200 restarts.
    /// </summary>
    private sealed class ResumingKeepAlive(IReadOnlyList<EtcdClusterMember> members, long leaseId) : IDisposable
    {
        private int _member;
        private EtcdClients? _client;
        private AsyncDuplexStreamingCall<LeaseKeepAliveRequest, LeaseKeepAliveResponse>? _call;

        public int Renewals { get; private set; }

        public List<StatusCode> EndStatuses { get; } = [];

        /// <summary>Renews the lease every second for <paramref name="duration"/>; every answer must renew it to <paramref name="ttl"/>.</summary>
        public async Task RenewForAsync(TimeSpan duration, long ttl)
        {
            var until = DateTime.UtcNow + duration;
            while (DateTime.UtcNow < until)
            {
                Assert.That(await RenewOnceAsync(), Is.EqualTo(ttl), "each keep-alive renews the lease to its granted TTL (0: it expired)");
                Renewals++;

                // A client's pacing, not a wait for the server: clientv3 sends every TTL/3; a second
                // here leaves a test on a loaded machine more of the TTL to ride out an election.
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
        }

        private async Task<long> RenewOnceAsync()
        {
            while (true)
            {
                try
                {
                    if (_call is null)
                    {
                        _client = new EtcdClients(members[_member].ClientUrl);
                        _call = _client.Lease.LeaseKeepAlive();
                    }

                    await _call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = leaseId });
                    using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    Assert.That(await _call.ResponseStream.MoveNext(limit.Token), Is.True, "the keep-alive stream ended without a status");
                    return _call.ResponseStream.Current.TTL;
                }
                catch (RpcException e) when (EndStatuses.Count < 200 && !(e.StatusCode == StatusCode.Cancelled && e.Status.Detail.Contains("deadline", StringComparison.OrdinalIgnoreCase)))
                {
                    EndStatuses.Add(e.StatusCode);
                    Dispose();
                    _call = null;
                    if (members[_member].IsStopped)
                    {
                        _member = (_member + 1) % members.Count;
                    }
                }
            }
        }

        public void Dispose()
        {
            _call?.Dispose();
            _client?.Dispose();
        }
    }
}
