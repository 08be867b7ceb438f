using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The apply path hands a committed batch's puts to the store's writer as runs, and a delete or
/// txn between them after every write before it: writes of every kind, proposed at once from every
/// member so that committed batches mix them, must be applied in log order on every member. Checked
/// against an independent model: the accepted writes replayed in revision order must give each
/// caller's previous key-values and deletion counts, and every member's final state.
/// </summary>
public sealed class ReplicatedApplyOrderTests
{
    private const int Keys = 12;

    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1717, 2);

    [TestCaseSource(nameof(Seeds))]
    public async Task PutsDeletesAndTxnsInOneCommittedBatchApplyInLogOrderOnEveryMember(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var members = cluster.Members.Values.ToArray();

        const int Writes = 400;
        var plans = new Write[Writes];
        var calls = new Task<object>[Writes];
        for (int i = 0; i < Writes; i++)
        {
            var plan = new Write(random.Next(10) switch
            {
                < 6 => WriteKind.Put,
                < 8 => WriteKind.Delete,
                _ => WriteKind.TxnPut,
            }, $"k{random.Next(Keys):D2}", $"v{i}", PrevKv: random.Next(2) == 0);
            plans[i] = plan;
            calls[i] = Issue(members[random.Next(members.Length)], plan);
        }

        // The answers: each write that changed something names the revision it made.
        var byRevision = new SortedDictionary<long, (Write Plan, object Answer)>();
        var deletesOfNothing = 0;
        for (int i = 0; i < Writes; i++)
        {
            var answer = await calls[i].WaitAsync(Waits.Limit);
            if (answer is DeleteRangeResponse { Deleted: 0 })
            {
                // Made no revision: its place in the order is not observable from its answer.
                deletesOfNothing++;
                continue;
            }

            long revision = HeaderOf(answer).Revision;
            Assert.That(byRevision.TryAdd(revision, (plans[i], answer)), Is.True, $"seed {seed}: two writes answered with revision {revision}");
        }

        // Replayed in revision order, the model gives every answer that depends on what came before.
        var model = new Dictionary<string, string>();
        long expectedRevision = 2; // revision 1 is the empty store
        foreach (var (revision, (plan, answer)) in byRevision)
        {
            Assert.That(revision, Is.EqualTo(expectedRevision++), $"seed {seed}: the accepted writes' revisions have a gap");
            model.TryGetValue(plan.Key, out var before);
            switch (answer)
            {
                case PutResponse put:
                    Assert.That(put.PrevKv is null ? null : Text(put.PrevKv.Value), Is.EqualTo(plan.PrevKv ? before : null), $"seed {seed}: previous value of {plan.Key} at revision {revision}");
                    model[plan.Key] = plan.Value;
                    break;
                case DeleteRangeResponse delete:
                    Assert.That(before, Is.Not.Null, $"seed {seed}: revision {revision} deleted {plan.Key}, which the model does not hold");
                    Assert.That(delete.Deleted, Is.EqualTo(1));
                    Assert.That(delete.PrevKvs.Select(kv => Text(kv.Value)), Is.EqualTo(plan.PrevKv ? new[] { before } : Array.Empty<string>()), $"seed {seed}: deleted value of {plan.Key} at revision {revision}");
                    model.Remove(plan.Key);
                    break;
                case TxnResponse txn:
                    Assert.That(txn.Succeeded, Is.EqualTo(before is not null), $"seed {seed}: the txn at revision {revision} compared {plan.Key}'s existence");
                    model[plan.Key] = plan.Value;
                    break;
            }
        }

        TestContext.Out.WriteLine($"{byRevision.Count} writes made revisions, {deletesOfNothing} deletes found nothing");

        // Every member applied the same history, and ends where the model does.
        ulong applied = members.Max(m => m.Status.RaftAppliedIndex);
        await cluster.WaitForAppliedAsync(applied);
        foreach (var member in members)
        {
            Assert.That(member.Status.Revision, Is.EqualTo(expectedRevision - 1), $"seed {seed}: member {member.MemberId}'s revision");
            var all = await member.RangeAsync(new RangeRequest { Key = Key("k"), RangeEnd = Key("l") }, ReadConsistency.Serializable).AsTask().WaitAsync(Waits.Limit);
            Assert.That(
                all.Kvs.ToDictionary(kv => Text(kv.Key), kv => Text(kv.Value)),
                Is.EquivalentTo(model),
                $"seed {seed}: member {member.MemberId}'s final state");
        }
    }

    private static async Task<object> Issue(ReplicatedStore member, Write plan) => plan.Kind switch
    {
        WriteKind.Put => await member.PutAsync(new PutRequest { Key = Key(plan.Key), Value = Key(plan.Value), PrevKv = plan.PrevKv }),
        WriteKind.Delete => await member.DeleteRangeAsync(new DeleteRangeRequest { Key = Key(plan.Key), PrevKv = plan.PrevKv }),
        _ => await member.TxnAsync(new TxnRequest
        {
            // Succeeds when the key exists; either branch writes the value, so the txn always makes a revision.
            Compare = [new Compare { Result = CompareResult.Greater, Target = CompareTarget.Version, Key = Key(plan.Key), Version = 0 }],
            Success = [RequestOp.Put(new PutRequest { Key = Key(plan.Key), Value = Key(plan.Value) })],
            Failure = [RequestOp.Put(new PutRequest { Key = Key(plan.Key), Value = Key(plan.Value) })],
        }),
    };

    private static ResponseHeader HeaderOf(object answer) => answer switch
    {
        PutResponse put => put.Header,
        DeleteRangeResponse delete => delete.Header,
        TxnResponse txn => txn.Header,
        _ => throw new InvalidOperationException($"unexpected answer {answer.GetType().Name}"),
    };

    private enum WriteKind
    {
        Put,
        Delete,
        TxnPut,
    }

    private sealed record Write(WriteKind Kind, string Key, string Value, bool PrevKv);
}
