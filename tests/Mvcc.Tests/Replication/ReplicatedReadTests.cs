using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>Linearizable reads on any member after leader changes; serializable reads are local.</summary>
public sealed class ReplicatedReadTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1800, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task ALinearizableReadOnEveryFollowerSeesTheWriteTheNewLeaderJustAcknowledged(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        for (int round = 0; round < 6; round++)
        {
            // A new leader: by transfer in even rounds, by isolating the old one in odd rounds.
            ulong old = cluster.LeaderId();
            var candidates = cluster.Members.Keys.Where(id => id != old).ToArray();
            ulong target = candidates[random.Next(candidates.Length)];
            if (round % 2 == 0)
            {
                await cluster[old].TransferLeadershipAsync(target).AsTask().WaitAsync(Waits.Limit);
            }
            else
            {
                cluster.Network.Isolate(old);
                await WaitUntilLeadsAsync(cluster[target], cluster[candidates.First(c => c != target)], old);
                cluster.Network.Heal();
            }

            ulong leader = await cluster.WaitForLeaderAsync();
            Assert.That(leader, Is.Not.EqualTo(old), $"round {round}: the leader changed");

            string value = $"round {round} by {leader}";
            var put = await ClientAsync(() => cluster[leader].PutAsync(new PutRequest { Key = Key("x"), Value = Key(value) }));

            // Right after the acknowledgement, every other member's linearizable read must see it.
            foreach (var id in cluster.Members.Keys.Where(id => id != leader))
            {
                var read = await ClientAsync(() => cluster[id].RangeAsync(new RangeRequest { Key = Key("x") }));
                Assert.That(read.Kvs, Has.Count.EqualTo(1), $"round {round}, member {id}");
                Assert.That(Text(read.Kvs[0].Value), Is.EqualTo(value), $"round {round}, member {id}");
                Assert.That(read.Kvs[0].ModRevision, Is.EqualTo(put.Header.Revision), $"round {round}, member {id}");
                Assert.That(read.Header.Revision, Is.GreaterThanOrEqualTo(put.Header.Revision));
            }
        }
    }

    [Test]
    public async Task ASerializableReadNeedsNoLeaderAndALinearizableOneFailsWithoutOne()
    {
        // A short read timeout: the isolated member's linearizable read must fail, not wait long.
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed: 1810, o => o with { Raft = o.Raft with { ReadIndexTimeout = TimeSpan.FromMilliseconds(300) } });
        await cluster[1].PutAsync(new PutRequest { Key = Key("k"), Value = Key("v") }).AsTask().WaitAsync(Waits.Limit);
        await cluster.WaitForAppliedAsync(cluster[1].Status.RaftAppliedIndex);
        ulong follower = cluster.FollowerIds().First();
        cluster.Network.Isolate(follower);
        var local = await cluster[follower].RangeAsync(new RangeRequest { Key = Key("k") }, ReadConsistency.Serializable).AsTask().WaitAsync(Waits.Limit);
        Assert.That(Text(local.Kvs[0].Value), Is.EqualTo("v"));
        Assert.CatchAsync(async () => await cluster[follower].RangeAsync(new RangeRequest { Key = Key("k") }).AsTask().WaitAsync(Waits.Limit));
    }

    /// <summary>
    /// A client as a real one behaves: on "no leader" or a dropped proposal it retries (bounded),
    /// as etcd's clients retry unavailable errors. A timed-out write may have applied: the tests
    /// here only write keys whose retry is harmless to what they check. A call that never answers
    /// (none within <see cref="Waits.Limit"/>) is a hang, not retried: the test fails naming it,
    /// with <paramref name="state"/>'s description of the system then.
    /// </summary>
    internal static async Task<T> ClientAsync<T>(Func<ValueTask<T>> call, Func<string>? state = null, string what = "a client call")
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await call().AsTask().OrFailAsync($"{what} (attempt {attempt + 1})", state);
            }
            catch (Exception e) when (attempt < 50 && e is NoLeaderException or ProposalDroppedException or TimeoutException)
            {
                await Task.Yield();
                await Task.Delay(ReplicatedCluster.TickInterval * 5);
            }
        }
    }

    private static async Task WaitUntilLeadsAsync(ReplicatedStore target, ReplicatedStore other, ulong old)
    {
        // Either of the two connected members may win the election; wait until one of them leads.
        using var cts = new CancellationTokenSource(Waits.Limit);
        var first = await Task.WhenAny(LeadsAsync(target, old, cts.Token), LeadsAsync(other, old, cts.Token));
        await first;
        cts.Cancel();
    }

    private static async Task LeadsAsync(ReplicatedStore member, ulong old, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var change in member.LeaderChanges(cancellationToken))
            {
                if (change.LeaderId != 0 && change.LeaderId != old)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
