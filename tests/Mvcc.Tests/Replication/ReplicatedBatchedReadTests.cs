using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// Many linearizable single-key reads at once on every member (so that read-index groups, and the
/// <see cref="LinearizableReadBatch"/> that reads each group's reads together, carry many reads):
/// each read sees every write acknowledged before it began, and gets its own answer — its key's
/// value, nothing for an absent key, a count for count-only, its own error for a future revision.
/// </summary>
public sealed class ReplicatedBatchedReadTests
{
    [Test]
    public async Task ManyReadsAtOnceEachGetTheirOwnAnswerOnEveryMember()
    {
        const int Seed = 1718;
        TestContext.Out.WriteLine($"seed {Seed}");
        var random = new Random(Seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: Seed);
        var values = new Dictionary<int, (string Value, long ModRevision)>();
        for (int i = 0; i < 40; i++)
        {
            var member = cluster[(ulong)random.Next(1, 4)];
            string value = $"value {i} {random.Next()}";
            var put = await member.PutAsync(new PutRequest { Key = Key($"k{i % 30}"), Value = Key(value) }).AsTask().WaitAsync(Waits.Limit);
            values[i % 30] = (value, put.Header.Revision);
        }

        long lastWrite = values.Values.Max(v => v.ModRevision);
        using var never = new CancellationTokenSource();
        foreach (var (id, member) in cluster.Members)
        {
            var kinds = new int[300];
            var keys = new int[300];
            var reads = new Task<RangeResponse>[300];
            for (int r = 0; r < reads.Length; r++)
            {
                kinds[r] = random.Next(10);
                keys[r] = random.Next(40);
                var request = new RangeRequest
                {
                    Key = Key($"k{keys[r]}"),
                    CountOnly = kinds[r] == 0,
                    Revision = kinds[r] == 1 ? lastWrite + 1_000 : 0,
                };
                // Half of them with a token that is never cancelled (the etcd endpoint's reads carry one).
                reads[r] = member.RangeAsync(request, cancellationToken: r % 2 == 0 ? default : never.Token).AsTask();
            }

            await Task.WhenAll(reads.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(Waits.Limit);
            for (int r = 0; r < reads.Length; r++)
            {
                string what = $"member {id}, read {r} (key k{keys[r]}, kind {kinds[r]})";
                if (kinds[r] == 1)
                {
                    Assert.That(reads[r].Exception?.InnerException, Is.TypeOf<FutureRevisionException>(), what);
                    continue;
                }

                var response = await reads[r];
                Assert.That(response.Header.MemberId, Is.EqualTo(id), what);
                Assert.That(response.Header.Revision, Is.GreaterThanOrEqualTo(lastWrite), what + ": sees every acknowledged write");
                bool present = values.TryGetValue(keys[r], out var expected);
                Assert.That(response.Count, Is.EqualTo(present ? 1 : 0), what);
                if (kinds[r] == 0 || !present)
                {
                    Assert.That(response.Kvs, Is.Empty, what);
                    continue;
                }

                Assert.That(response.Kvs.Select(kv => (Text(kv.Key), Text(kv.Value), kv.ModRevision)), Is.EqualTo(new[] { ($"k{keys[r]}", expected.Value, expected.ModRevision) }), what);
            }
        }
    }

    [Test]
    public async Task ReadersThatReadAgainFromTheirContinuationsEachGetTheirOwnKeyEveryTime()
    {
        // A reader resumed by a batch's flush that reads again at once reuses, on that thread, the
        // pooled read it has just taken its result from (BatchedRead's spare slot): every answer must
        // still be its own read's, never another reader's or a previous one's.
        const int Seed = 1720;
        TestContext.Out.WriteLine($"seed {Seed}");
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: Seed);
        var leader = cluster[cluster.LeaderId()];
        for (int k = 0; k < 50; k++)
        {
            await leader.PutAsync(new PutRequest { Key = Key($"k{k}"), Value = Key($"value of k{k}") }).AsTask().WaitAsync(Waits.Limit);
        }

        await cluster.WaitForAppliedAsync(leader.Status.RaftAppliedIndex);
        var readers = Enumerable.Range(0, 32).Select(reader => Task.Run(async () =>
        {
            var random = new Random(Seed * 100 + reader);
            var member = cluster[(ulong)(1 + (reader % 3))];
            var seen = new List<string>();
            for (int i = 0; i < 40; i++)
            {
                // 50 of the keys exist, the rest do not: absent answers come back in between.
                int k = random.Next(60);
                var response = await member.RangeAsync(new RangeRequest { Key = Key($"k{k}") });
                string expected = k < 50 ? $"k{k}=value of k{k}" : $"k{k} absent";
                string got = response.Kvs.Count == 0 ? $"k{k} absent" : $"{Text(response.Kvs[0].Key)}={Text(response.Kvs[0].Value)}";
                if (got != expected)
                {
                    seen.Add($"reader {reader}, read {i}: expected {expected}, got {got}");
                }
            }

            return seen;
        })).ToArray();

        var wrong = (await Task.WhenAll(readers).WaitAsync(Waits.Limit)).SelectMany(s => s).ToList();
        Assert.That(wrong, Is.Empty);
    }

    [Test]
    public async Task AReadCancelledWhileItsBatchWaitsEndsAtOnceAndTheOthersInItAreStillAnswered()
    {
        const int Seed = 1719;
        TestContext.Out.WriteLine($"seed {Seed}");
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: Seed);
        var put = await cluster[cluster.LeaderId()].PutAsync(new PutRequest { Key = Key("k"), Value = Key("v") }).AsTask().WaitAsync(Waits.Limit);
        ulong followerId = cluster.FollowerIds().First();
        var follower = cluster[followerId];
        await cluster.WaitForAppliedAsync(cluster[cluster.LeaderId()].Status.RaftAppliedIndex);

        using (var already = new CancellationTokenSource())
        {
            already.Cancel();
            Assert.That(async () => await follower.RangeAsync(new RangeRequest { Key = Key("k") }, cancellationToken: already.Token),
                Throws.InstanceOf<OperationCanceledException>(), "a token cancelled before the call");
        }

        // Cut off, the follower cannot confirm a read point: its reads wait in one batch.
        cluster.Network.Isolate(followerId);
        using var cancelled = new CancellationTokenSource();
        using var kept = new CancellationTokenSource();
        var cancelledRead = follower.RangeAsync(new RangeRequest { Key = Key("k") }, cancellationToken: cancelled.Token).AsTask();
        var keptRead = follower.RangeAsync(new RangeRequest { Key = Key("k") }, cancellationToken: kept.Token).AsTask();
        var plainRead = follower.RangeAsync(new RangeRequest { Key = Key("k") }).AsTask();
        Assert.That(cancelledRead.IsCompleted || keptRead.IsCompleted || plainRead.IsCompleted, Is.False, "no read point while isolated");

        cancelled.Cancel();
        Assert.That(async () => await cancelledRead.WaitAsync(Waits.Limit), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(keptRead.IsCompleted || plainRead.IsCompleted, Is.False, "the others still wait for their read point");

        cluster.Network.Heal();
        foreach (var (name, read) in new[] { ("with a token", keptRead), ("without one", plainRead) })
        {
            // After the heal a read point is confirmed (the round is retried), unless the isolation
            // cost the follower its leader: then the read's own error, never a stale value or a hang.
            try
            {
                var response = await read.WaitAsync(Waits.Limit);
                Assert.That(response.Header.Revision, Is.GreaterThanOrEqualTo(put.Header.Revision), name);
                Assert.That(response.Kvs.Select(kv => Text(kv.Value)), Is.EqualTo(new[] { "v" }), name);
            }
            catch (Exception e) when (e is NoLeaderException or TimeoutException)
            {
                TestContext.Out.WriteLine($"read {name}: {e.GetType().Name} after the isolation");
            }
        }
    }
}
