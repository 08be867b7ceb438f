using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;
using static EmbeddedRaft.Interop.Tests.Grpc.KvOverGrpcTests;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>etcd's Cluster, Maintenance and Auth services, and what answers UNIMPLEMENTED.</summary>
[TestFixture]
public sealed class ClusterAndMaintenanceOverGrpcTests : OverGrpcFixture
{
    [Test]
    public async Task EveryMemberListsTheSameMembersWithEtcdStyleUrls()
    {
        foreach (EtcdClients client in Clients)
        {
            MemberListResponse list = await client.Cluster.MemberListAsync(new MemberListRequest());
            Assert.That(list.Members.Select(m => (m.ID, m.Name, m.PeerURLs.Single(), m.ClientURLs.Single(), m.IsLearner)), Is.EquivalentTo(
                Ours.Members.Select(m => (m.Id, m.Name, m.PeerUrl, m.ClientUrl, false))));
            Assert.That(list.Members.All(m => m.PeerURLs.Single().StartsWith("http://", StringComparison.Ordinal)), Is.True);
        }
    }

    [Test]
    public async Task ALearnerIsAddedWithoutANameAndRemoved()
    {
        MemberAddResponse added = await Clients[1].Cluster.MemberAddAsync(new MemberAddRequest { PeerURLs = { "http://127.0.0.1:1" }, IsLearner = true });
        Assert.That(added.Member.ID, Is.Not.Zero);
        Assert.That(added.Member.Name, Is.Empty, "unstarted, as etcd shows it");
        Assert.That(added.Member.IsLearner, Is.True);
        Assert.That(added.Members.Select(m => m.ID), Does.Contain(added.Member.ID));

        MemberListResponse listed = await Clients[2].Cluster.MemberListAsync(new MemberListRequest());
        Assert.That(listed.Members.Single(m => m.ID == added.Member.ID).PeerURLs.Single(), Is.EqualTo("http://127.0.0.1:1"));

        await AssertEtcdError(() => Clients[0].Cluster.MemberAddAsync(new MemberAddRequest { PeerURLs = { "http://127.0.0.1:1" }, IsLearner = true }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: Peer URLs already exists");
        await AssertEtcdError(() => Clients[0].Cluster.MemberPromoteAsync(new MemberPromoteRequest { ID = Ours.Members[0].Id }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: can only promote a learner member");

        // It never started, so its log is empty: every member refuses to promote it, the leader by
        // its own check and the followers by forwarding to the leader, as etcd.
        foreach (EtcdClients client in Clients)
        {
            await AssertEtcdError(() => client.Cluster.MemberPromoteAsync(new MemberPromoteRequest { ID = added.Member.ID }).ResponseAsync,
                StatusCode.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader");
        }

        // Its peer URLs change (etcd's MemberUpdate), seen by every member; another member's URL is refused.
        MemberUpdateResponse updated = await Clients[2].Cluster.MemberUpdateAsync(new MemberUpdateRequest { ID = added.Member.ID, PeerURLs = { "http://127.0.0.1:2" } });
        Assert.That(updated.Members.Single(m => m.ID == added.Member.ID).PeerURLs.Single(), Is.EqualTo("http://127.0.0.1:2"));
        foreach (EtcdClients client in Clients)
        {
            MemberListResponse after = await client.Cluster.MemberListAsync(new MemberListRequest());
            Member learner = after.Members.Single(m => m.ID == added.Member.ID);
            Assert.That((learner.PeerURLs.Single(), learner.IsLearner), Is.EqualTo(("http://127.0.0.1:2", true)));
        }

        await AssertEtcdError(() => Clients[0].Cluster.MemberUpdateAsync(new MemberUpdateRequest { ID = added.Member.ID, PeerURLs = { Ours.Members[1].PeerUrl } }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: Peer URLs already exists");

        MemberRemoveResponse removed = await Clients[0].Cluster.MemberRemoveAsync(new MemberRemoveRequest { ID = added.Member.ID });
        Assert.That(removed.Members.Select(m => m.ID), Is.EquivalentTo(Ours.Members.Select(m => m.Id)));
    }

    [Test]
    public async Task MembershipErrorsAreEtcds()
    {
        await AssertEtcdError(() => Clients[0].Cluster.MemberRemoveAsync(new MemberRemoveRequest { ID = 0x1234 }).ResponseAsync,
            StatusCode.NotFound, "etcdserver: member not found");
        await AssertEtcdError(() => Clients[0].Cluster.MemberPromoteAsync(new MemberPromoteRequest { ID = 0x1234 }).ResponseAsync,
            StatusCode.NotFound, "etcdserver: member not found");
        await AssertEtcdError(() => Clients[1].Cluster.MemberAddAsync(new MemberAddRequest { PeerURLs = { "not a url" } }).ResponseAsync,
            StatusCode.InvalidArgument, "etcdserver: given member URLs are invalid");
        await AssertEtcdError(() => Clients[0].Cluster.MemberUpdateAsync(new MemberUpdateRequest { ID = 0x1234, PeerURLs = { "http://127.0.0.1:3" } }).ResponseAsync,
            StatusCode.NotFound, "etcdserver: member not found");
        await AssertEtcdError(() => Clients[1].Cluster.MemberUpdateAsync(new MemberUpdateRequest { ID = Ours.Members[0].Id, PeerURLs = { "not a url" } }).ResponseAsync,
            StatusCode.InvalidArgument, "etcdserver: given member URLs are invalid");
    }

    [Test]
    public async Task StatusReportsTheMemberTheLeaderAndRaftProgress()
    {
        PutResponse put = await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("m/status"), Value = Bytes("x") });
        var leaders = new HashSet<ulong>();
        for (int i = 0; i < 3; i++)
        {
            StatusResponse status = await Clients[i].Maintenance.StatusAsync(new StatusRequest());
            Assert.That(status.Header.MemberId, Is.EqualTo(Ours.Members[i].Id));
            Assert.That(status.Version, Is.EqualTo("3.4.23"));
            // etcd's raftIndex (the committed index) is never below raftAppliedIndex; the store's
            // Status.RaftIndex is the persisted hard state's commit, which can trail the applied
            // index for a moment (seen in soak runs), so only both being set is checked here.
            Assert.That(status.RaftIndex, Is.GreaterThan(0UL));
            Assert.That(status.RaftAppliedIndex, Is.GreaterThan(0UL));
            Assert.That(status.RaftTerm, Is.GreaterThan(0UL));
            Assert.That(status.DbSize, Is.GreaterThan(0));
            Assert.That(status.IsLearner, Is.False);
            Assert.That(status.Errors, Is.Empty);
            leaders.Add(status.Leader);
        }

        Assert.That(leaders, Has.Count.EqualTo(1), "every member names the same leader");
        Assert.That(Ours.Members.Select(m => m.Id), Does.Contain(leaders.Single()));
        Assert.That(put.Header.Revision, Is.GreaterThan(1));
    }

    [Test]
    public async Task EveryMemberHashesTheSameHistoryToTheSameValue()
    {
        PutResponse first = await Clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("m/hash"), Value = Bytes("1") });
        PutResponse second = await Clients[1].Kv.PutAsync(new PutRequest { Key = Bytes("m/hash"), Value = Bytes("2") });
        foreach (long revision in new[] { first.Header.Revision, second.Header.Revision })
        {
            var hashes = new List<uint>();
            foreach (EtcdClients client in Clients)
            {
                HashKVResponse hash = await client.Maintenance.HashKVAsync(new HashKVRequest { Revision = revision });
                hashes.Add(hash.Hash);
            }

            Assert.That(hashes.Distinct().Count(), Is.EqualTo(1), $"every member's hash at revision {revision}");
        }

        HashKVResponse atFirst = await Clients[2].Maintenance.HashKVAsync(new HashKVRequest { Revision = first.Header.Revision });
        HashKVResponse atSecond = await Clients[2].Maintenance.HashKVAsync(new HashKVRequest { Revision = second.Header.Revision });
        Assert.That(atSecond.Hash, Is.Not.EqualTo(atFirst.Hash), "another history, another hash");
    }

    [Test]
    public async Task NoAlarmIsRaisedOnAHealthyCluster()
    {
        AlarmResponse alarms = await Clients[2].Maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get });
        Assert.That(alarms.Alarms, Is.Empty);
    }

    [Test]
    public async Task MoveLeaderIsTheLeadersCallAndHandsLeadershipToTheTarget()
    {
        ulong leader = (await Clients[0].Maintenance.StatusAsync(new StatusRequest())).Leader;
        int leaderIndex = Ours.Members.ToList().FindIndex(m => m.Id == leader);
        int followerIndex = (leaderIndex + 1) % 3;
        ulong target = Ours.Members[followerIndex].Id;

        await AssertEtcdError(() => Clients[followerIndex].Maintenance.MoveLeaderAsync(new MoveLeaderRequest { TargetID = target }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: not leader");
        await AssertEtcdError(() => Clients[leaderIndex].Maintenance.MoveLeaderAsync(new MoveLeaderRequest { TargetID = 0x1234 }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: bad leader transferee");

        await Clients[leaderIndex].Maintenance.MoveLeaderAsync(new MoveLeaderRequest { TargetID = target });
        Assert.That((await Clients[followerIndex].Maintenance.StatusAsync(new StatusRequest())).Leader, Is.EqualTo(target));
    }

    [Test]
    public async Task AuthAnswersThatAuthenticationIsNotEnabledAndTheRestIsUnimplemented()
    {
        await AssertEtcdError(() => Clients[0].Auth.AuthenticateAsync(new AuthenticateRequest { Name = "root", Password = "x" }).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: authentication is not enabled");
        await AssertEtcdError(() => Clients[0].Auth.UserListAsync(new AuthUserListRequest()).ResponseAsync,
            StatusCode.FailedPrecondition, "etcdserver: authentication is not enabled");
        await AssertUnimplemented(() => Clients[1].Maintenance.DefragmentAsync(new DefragmentRequest()).ResponseAsync,
            "the B+tree cannot shrink its file online");
        await AssertUnimplemented(() => Clients[1].Maintenance.AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = AlarmType.Nospace }).ResponseAsync,
            "the store raises its own alarms");
    }

    [Test]
    public async Task ASnapshotStreamsTheMembersStoreInEtcdsFramingAndOpensAsAStoreAtOneRevision()
    {
        PutResponse last = null!;
        for (int i = 0; i < 200; i++)
        {
            // Values of a few hundred bytes: the store spans several 32 KiB chunks.
            last = await Clients[i % 3].Kv.PutAsync(new PutRequest { Key = Bytes($"snap/{i % 50:D2}"), Value = Bytes($"{i}:{new string('v', 300)}") });
        }

        // The last put went through member 2 (199 % 3 = 1), which answers a put once it applied it.
        var responses = new List<SnapshotResponse>();
        using (AsyncServerStreamingCall<SnapshotResponse> call = Clients[1].Maintenance.Snapshot(new SnapshotRequest()))
        {
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                responses.Add(call.ResponseStream.Current.Clone());
            }
        }

        // etcd's framing: data blobs of 32 KiB (the last may be shorter), each with the bytes still to
        // come; then one blob of 32 bytes, remaining 0: the SHA-256 of the data.
        Assert.That(responses, Has.Count.GreaterThan(2));
        List<SnapshotResponse> data = responses[..^1];
        long total = data.Sum(r => (long)r.Blob.Length);
        long sent = 0;
        foreach (SnapshotResponse response in data)
        {
            sent += response.Blob.Length;
            Assert.That(response.RemainingBytes, Is.EqualTo((ulong)(total - sent)));
        }

        Assert.That(data[..^1].Select(r => r.Blob.Length), Is.All.EqualTo(32 * 1024));
        Assert.That(responses[^1].RemainingBytes, Is.Zero);
        Assert.That(responses[^1].Blob.Length, Is.EqualTo(32));
        byte[] saved = [.. data.SelectMany(r => r.Blob.ToByteArray()), .. responses[^1].Blob.ToByteArray()];

        string directory = Directory.CreateTempSubdirectory("snapshot-").FullName;
        try
        {
            long revision;
            using (Mvcc.MvccStore restored = SnapshotFiles.OpenAsStore(saved, directory))
            {
                revision = restored.Revision;
                Assert.That(revision, Is.GreaterThanOrEqualTo(last.Header.Revision), "the snapshot holds every write the member applied before it was asked");
                var everything = new Mvcc.RangeRequest { Key = "\0"u8.ToArray(), RangeEnd = "\0"u8.ToArray(), Revision = revision };
                RangeResponse live = await Clients[1].Kv.RangeAsync(new RangeRequest { Key = Bytes("\0"), RangeEnd = Bytes("\0"), Revision = revision });
                Assert.That(restored.Range(everything).Kvs.Select(kv => (ByteString.CopyFrom(kv.Key.Span), ByteString.CopyFrom(kv.Value.Span), kv.CreateRevision, kv.ModRevision, kv.Version)),
                    Is.EqualTo(live.Kvs.Select(kv => (kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version))),
                    $"every key at revision {revision}, as the cluster answers it");
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static Task AssertUnimplemented(Func<Task> call, string why)
    {
        RpcException e = Assert.ThrowsAsync<RpcException>(async () => await call())!;
        Assert.That(e.StatusCode, Is.EqualTo(StatusCode.Unimplemented), $"{why}: {e.Status.Detail}");
        return Task.CompletedTask;
    }
}
