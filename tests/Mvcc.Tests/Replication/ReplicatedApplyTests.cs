using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Mvcc.Tests.Replication.ReplicatedCluster;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The apply path takes a put's answer straight from the store once the writer has handled the
/// batch (no async wait per put): puts the writer accepted and puts it refused, proposed at once
/// from every member so that committed batches mix them, must each get their own answer.
/// </summary>
public sealed class ReplicatedApplyTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 1705, 1);

    [TestCaseSource(nameof(Seeds))]
    public async Task AcceptedAndRefusedPutsInOneCommittedBatchEachGetTheirOwnAnswer(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var lease = await cluster[1].LeaseGrantAsync(ttlSeconds: 600).AsTask().WaitAsync(Waits.Limit);
        var members = cluster.Members.Values.ToArray();

        // Every third put names a lease that does not exist: the writer refuses it (LeaseNotFound)
        // after the put was committed, in the same Raft batch as its accepted neighbours.
        const int Puts = 300;
        var refusedByPlan = new bool[Puts];
        var writes = new Task<PutResponse>[Puts];
        for (int i = 0; i < Puts; i++)
        {
            refusedByPlan[i] = random.Next(3) == 0;
            var request = new PutRequest
            {
                Key = Key($"k{i % 40:D2}"),
                Value = Key($"v{i}"),
                Lease = refusedByPlan[i] ? lease.Id + 1 : (i % 2 == 0 ? lease.Id : 0),
                PrevKv = i % 5 == 0,
            };
            writes[i] = members[random.Next(members.Length)].PutAsync(request).AsTask();
        }

        var revisions = new List<long>();
        for (int i = 0; i < Puts; i++)
        {
            if (refusedByPlan[i])
            {
                var refused = Assert.ThrowsAsync<MvccException>(async () => await writes[i].WaitAsync(Waits.Limit));
                Assert.That(refused!.Error, Is.EqualTo(MvccError.LeaseNotFound), $"put {i} (seed {seed})");
            }
            else
            {
                var put = await writes[i].WaitAsync(Waits.Limit);
                revisions.Add(put.Header.Revision);
            }
        }

        // Each accepted put made one revision of its own, and nothing else did.
        int accepted = refusedByPlan.Count(r => !r);
        Assert.That(revisions.Distinct().Count(), Is.EqualTo(accepted), $"seed {seed}");
        Assert.That(revisions.Max(), Is.EqualTo(1 + accepted), $"seed {seed}: revision 1 is the empty store");

        // The members applied the same history.
        ulong applied = members.Max(m => m.Status.RaftAppliedIndex);
        await cluster.WaitForAppliedAsync(applied);
        var hashes = new HashSet<uint>();
        foreach (var member in members)
        {
            var hash = await member.HashKVAsync(1 + accepted).AsTask().WaitAsync(Waits.Limit);
            hashes.Add(hash.Hash);
            Assert.That(member.Status.Revision, Is.EqualTo(1 + accepted));
        }

        Assert.That(hashes, Has.Count.EqualTo(1), $"seed {seed}: members disagree");
    }

    /// <summary>
    /// A put's command is encoded into its thread's reused buffer and proposed from there (the node
    /// copies it before <c>ProposeAsync</c> returns): puts started back to back on one thread, each
    /// encoded over the previous one's bytes, must each apply their own key and value on every
    /// member; and a put answered by its revision alone gets a header that names this member, its
    /// cluster and term, while one with PrevKv still gets its previous key-value.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task PutsStartedBackToBackOnOneThreadEachApplyTheirOwnBytes(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var members = cluster.Members.Values.ToArray();

        const int Puts = 200;
        var values = new byte[Puts][];
        var writes = new Task<PutResponse>[Puts];
        var proposers = new ReplicatedStore[Puts];
        for (int i = 0; i < Puts; i++)
        {
            // Values of different lengths, so an overwritten buffer shows in the length or the bytes.
            values[i] = new byte[1 + random.Next(300)];
            random.NextBytes(values[i]);
            proposers[i] = members[random.Next(members.Length)];
            writes[i] = proposers[i].PutAsync(new PutRequest { Key = Key($"b{i:D3}"), Value = values[i] }).AsTask();
        }

        var revisions = new HashSet<long>();
        for (int i = 0; i < Puts; i++)
        {
            var put = await writes[i].WaitAsync(Waits.Limit);
            Assert.That(revisions.Add(put.Header.Revision), Is.True, $"put {i}: revision {put.Header.Revision} twice (seed {seed})");
            Assert.That(put.Header.MemberId, Is.EqualTo(proposers[i].MemberId), $"put {i} (seed {seed})");
            Assert.That(put.Header.ClusterId, Is.EqualTo(proposers[i].ClusterId), $"put {i} (seed {seed})");
            Assert.That(put.Header.RaftTerm, Is.GreaterThan(0UL), $"put {i} (seed {seed})");
            Assert.That(put.PrevKv, Is.Null, $"put {i} (seed {seed})");
        }

        // Every member holds every key with its own value.
        ulong applied = members.Max(m => m.Status.RaftAppliedIndex);
        await cluster.WaitForAppliedAsync(applied);
        foreach (var member in members)
        {
            for (int i = 0; i < Puts; i++)
            {
                var read = await member.RangeAsync(new RangeRequest { Key = Key($"b{i:D3}") }, ReadConsistency.Serializable);
                Assert.That(read.Kvs, Has.Count.EqualTo(1), $"member {member.MemberId}, key {i} (seed {seed})");
                Assert.That(read.Kvs[0].Value.ToArray(), Is.EqualTo(values[i]), $"member {member.MemberId}, key {i} (seed {seed})");
            }
        }

        // A put asking for its previous key-value still gets it (the apply path's whole-response route).
        var again = await members[0].PutAsync(new PutRequest { Key = Key("b007"), Value = Key("new"), PrevKv = true }).AsTask().WaitAsync(Waits.Limit);
        Assert.That(again.PrevKv, Is.Not.Null, $"seed {seed}");
        Assert.That(again.PrevKv!.Value.ToArray(), Is.EqualTo(values[7]), $"seed {seed}");
        Assert.That(again.Header.MemberId, Is.EqualTo(members[0].MemberId), $"seed {seed}");
        Assert.That(again.Header.Revision, Is.EqualTo(revisions.Max() + 1), $"seed {seed}");
    }

    /// <summary>
    /// The apply path queues consecutive plain puts to the store's writer as one run, and ends the
    /// run at any other command: puts, deletes and transactions on a few keys, proposed at once from
    /// every member so that committed batches interleave them, must apply in log order. Each write's
    /// revision is its place in that order, so every key's final state on every member is what the
    /// write with the highest revision on it left.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task PutsBetweenDeletesAndTxnsApplyInLogOrder(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed);
        var members = cluster.Members.Values.ToArray();

        const int Writes = 300;
        const int Keys = 6;
        var keyOf = new int[Writes];
        var kindOf = new int[Writes]; // 0 put, 1 delete, 2 txn (an unconditional put of its own value)
        var writes = new Task<(long Revision, bool Changed)>[Writes];
        for (int i = 0; i < Writes; i++)
        {
            keyOf[i] = random.Next(Keys);
            int draw = random.Next(10);
            kindOf[i] = draw < 7 ? 0 : draw < 9 ? 1 : 2;
            var member = members[random.Next(members.Length)];
            var key = Key($"o{keyOf[i]}");
            var value = Key($"w{i}");
            writes[i] = kindOf[i] switch
            {
                0 => Outcome(member.PutAsync(new PutRequest { Key = key, Value = value }), r => (r.Header.Revision, true)),
                1 => Outcome(member.DeleteRangeAsync(new DeleteRangeRequest { Key = key }), r => (r.Header.Revision, r.Deleted > 0)),
                _ => Outcome(member.TxnAsync(new TxnRequest { Success = [RequestOp.Put(new PutRequest { Key = key, Value = value })] }), r => (r.Header.Revision, true)),
            };
        }

        // The last write that changed each key, by revision (a delete of an absent key changes
        // nothing and makes no revision); every change has a revision of its own.
        var last = new int?[Keys];
        var lastRevision = new long[Keys];
        var seen = new HashSet<long>();
        for (int i = 0; i < Writes; i++)
        {
            var (revision, changed) = await writes[i].WaitAsync(Waits.Limit);
            if (!changed)
            {
                continue;
            }

            Assert.That(seen.Add(revision), Is.True, $"write {i}: revision {revision} twice (seed {seed})");
            if (revision > lastRevision[keyOf[i]])
            {
                last[keyOf[i]] = i;
                lastRevision[keyOf[i]] = revision;
            }
        }

        ulong applied = members.Max(m => m.Status.RaftAppliedIndex);
        await cluster.WaitForAppliedAsync(applied);
        foreach (var member in members)
        {
            for (int k = 0; k < Keys; k++)
            {
                var read = await member.RangeAsync(new RangeRequest { Key = Key($"o{k}") }, ReadConsistency.Serializable);
                if (last[k] is not { } i || kindOf[i] == 1)
                {
                    Assert.That(read.Kvs, Is.Empty, $"member {member.MemberId}, key o{k}: last write {last[k]} (seed {seed})");
                    continue;
                }

                Assert.That(read.Kvs, Has.Count.EqualTo(1), $"member {member.MemberId}, key o{k}: last write {i} (seed {seed})");
                Assert.That(read.Kvs[0].ModRevision, Is.EqualTo(lastRevision[k]), $"member {member.MemberId}, key o{k} (seed {seed})");
                Assert.That(read.Kvs[0].Value.ToArray(), Is.EqualTo(Key($"w{i}").ToArray()), $"member {member.MemberId}, key o{k} (seed {seed})");
            }
        }

        static async Task<(long, bool)> Outcome<T>(ValueTask<T> write, Func<T, (long, bool)> outcomeOf) => outcomeOf(await write);
    }

    /// <summary>
    /// A caller's code must never run on the store's writer thread: a caller's continuation that
    /// waited for the store (a read through the writer, a dispose) would wait for itself, and any
    /// other would stall every member's writes behind it. Today the writer completes every op
    /// asynchronously and the node releases callers on its scheduler; a change that resumes the
    /// apply on the writer to save a hop (docs/benchmarks.md, "Replicated puts, session 22") must
    /// keep it so. Every put's continuation, on every member, runs where its completion runs it
    /// (ConfigureAwait(false)) and records its thread; none may be a writer. Members snapshot often,
    /// so the node's snapshot work happens during the run too.
    /// </summary>
    [TestCaseSource(nameof(Seeds))]
    public async Task NoCallersContinuationRunsOnTheStoresWriterThread(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        await using var cluster = await ReplicatedCluster.StartAsync(3, seed, SnapshotOften);
        var members = cluster.Members.Values.ToArray();

        const int Puts = 2_000;
        var threads = new string?[Puts];
        var writes = new Task[Puts];
        for (int i = 0; i < Puts; i++)
        {
            var member = members[random.Next(members.Length)];
            var request = new PutRequest { Key = Key($"t{i % 64:D2}"), Value = Key($"v{i}"), PrevKv = i % 7 == 0 };
            writes[i] = PutAndRecordThread(member, request, threads, i);
        }

        await Task.WhenAll(writes).WaitAsync(Waits.Limit);
        TestContext.Out.WriteLine("continuations by thread: " + string.Join(", ", threads.GroupBy(t => t ?? "(unnamed)").Select(g => $"{g.Key} {g.Count()}")));
        var onWriter = Enumerable.Range(0, Puts).Where(i => threads[i] == StoreWriter.ThreadName).ToArray();
        Assert.That(onWriter, Has.Length.Zero, $"puts whose caller's continuation ran on an MVCC writer thread, the first: {string.Join(", ", onWriter.Take(10))} (seed {seed})");
        Assert.That(members.Max(m => m.Status.Revision), Is.EqualTo(1 + Puts), $"every put applied, each its own revision (seed {seed})");

        static async Task PutAndRecordThread(ReplicatedStore member, PutRequest request, string?[] threads, int i)
        {
            await member.PutAsync(request).ConfigureAwait(false);
            threads[i] = Thread.CurrentThread.Name;
        }
    }
}
