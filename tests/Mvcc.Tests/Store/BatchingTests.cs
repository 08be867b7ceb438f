using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>Write batching: many writes per B+tree commit, reads of uncommitted batches, no-sync durability and the consistent index.</summary>
public sealed class BatchingTests
{
    [Test]
    public async Task NoSyncWritesAreReadableBeforeTheirBatchIsCommittedAndDurableAfterSync()
    {
        var fs = new FaultInjectingFileSystem(1);
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = MvccStoreOptions.MaxBatchInterval };
        var store = OpenOn(fs, options);
        long flushesBefore = fs.FlushCount;
        for (int i = 1; i <= 50; i++)
        {
            await store.PutAsync(new PutRequest { Key = B($"k{i % 7}"), Value = B($"v{i}") }, consistentIndex: (ulong)i);
        }

        Assert.That(fs.FlushCount, Is.EqualTo(flushesBefore), "no batch was committed yet (one minute interval, 10,000 writes)");
        Assert.That(store.Revision, Is.EqualTo(51));
        Assert.That(S(store.Get("k1", revision: 30).Kvs.Single().Value), Is.EqualTo("v29"));
        Assert.That(store.Range(new RangeRequest { Key = B("k"), RangeEnd = KeyRange.PrefixEnd(B("k")), CountOnly = true }).Count, Is.EqualTo(7));

        await store.SyncAsync();
        Assert.That(fs.FlushCount, Is.GreaterThan(flushesBefore));
        fs.Crash();
        try
        {
            store.Dispose();
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException)
        {
        }

        fs.Restart();
        using var reopened = OpenOn(fs, options);
        Assert.That((reopened.Revision, reopened.ConsistentIndex), Is.EqualTo((51L, 50UL)));
    }

    [Test]
    public async Task ABatchIsCommittedWhenItReachesTheBatchLimit()
    {
        var fs = new FaultInjectingFileSystem(2);
        await using var store = OpenOn(fs, new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchLimit = 10, BatchInterval = MvccStoreOptions.MaxBatchInterval });
        long flushesBefore = fs.FlushCount;
        long writesBefore = fs.WriteCount;
        for (int i = 0; i < 9; i++)
        {
            await store.PutAsync(new PutRequest { Key = B("k"), Value = B($"{i}") });
        }

        Assert.That(fs.WriteCount, Is.EqualTo(writesBefore), "nine writes: still one open batch");
        await store.PutAsync(new PutRequest { Key = B("k"), Value = B("9") });

        // The tenth write committed the batch (no-sync: written, not flushed); a no-sync write is
        // answered when applied, so wait for a later queued request to know the commit is behind us.
        await store.SetConsistentIndexAsync(1);
        Assert.That(fs.WriteCount, Is.GreaterThan(writesBefore));
        Assert.That(fs.FlushCount, Is.EqualTo(flushesBefore));
    }

    [Test]
    public async Task ANoSyncBatchIsCommittedWhenItsIntervalHasPassed()
    {
        var fs = new FaultInjectingFileSystem(4);
        await using var store = OpenOn(fs, new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = TimeSpan.FromMilliseconds(20) });
        using var written = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Write)
            {
                written.Set();
            }
        };
        await store.PutAsync(new PutRequest { Key = B("k"), Value = B("v") });

        // Far below BatchLimit: only the interval can commit it, on the writer thread, with no request queued.
        written.WaitOrFail("the batch being written once its interval passed");
        fs.BeforeEntering = null;
    }

    /// <summary>
    /// etcd's backend commits its batch by interval whatever the load. A writer kept busy (requests
    /// always queued when it takes the next) commits a no-sync batch once the interval has passed
    /// on the store's clock since the batch's first write, before it applies the writes queued
    /// behind it, instead of waiting for its queue to empty or for <see cref="MvccStoreOptions.BatchLimit"/>;
    /// a synced batch still takes everything queued into one group commit, interval or not.
    /// </summary>
    [TestCase(MvccDurability.NoSync, 3L)]
    [TestCase(MvccDurability.Synced, 21L)]
    public void AWriterKeptBusyCommitsANoSyncBatchOnceItsIntervalHasPassed(MvccDurability durability, long revisionOfTheFirstCommit)
    {
        var fs = new FaultInjectingFileSystem(6);
        var clock = new FakeTimeProvider();
        var interval = TimeSpan.FromMilliseconds(100);
        using var store = OpenOn(fs, new MvccStoreOptions { Durability = durability, BatchInterval = interval, TimeProvider = clock });

        // Revision 2 opens the batch (no-sync: the clock stands still, so it stays open).
        store.PutAsync(new PutRequest { Key = B("k01"), Value = B("v") }).AsTask().WaitOrFail("the first write");
        long revisionAtCommit = -1;
        using var committed = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Write && !committed.IsSet)
            {
                // On the writer thread, as the commit writes its first page: what it holds.
                revisionAtCommit = store.Revision;
                committed.Set();
            }
        };

        var writes = new List<Task>();
        var indexLock = store.IndexLock;
        indexLock.EnterReadLock();
        try
        {
            // The writer stops inside the second write (its new key waits for the index) ...
            writes.Add(store.PutAsync(new PutRequest { Key = B("k02"), Value = B("v") }).AsTask());
            Waits.UntilAsync(() => indexLock.WaitingWriteCount == 1, "the writer waiting for the index inside the second write").WaitOrFail("the writer to stop");

            // ... while 18 more queue behind it and the interval passes.
            for (int i = 3; i <= 20; i++)
            {
                writes.Add(store.PutAsync(new PutRequest { Key = B($"k{i:D2}"), Value = B("v") }).AsTask());
            }

            clock.Advance(interval);
        }
        finally
        {
            indexLock.ExitReadLock();
        }

        Task.WhenAll(writes).WaitOrFail("the writes");
        committed.WaitOrFail("the first commit after the interval");
        fs.BeforeEntering = null;
        Assert.That(revisionAtCommit, Is.EqualTo(revisionOfTheFirstCommit), "the revision applied when the first commit began writing");
        Assert.That(store.Revision, Is.EqualTo(21));
    }

    [Test]
    public async Task ConcurrentSyncedWritesShareCommits()
    {
        var fs = new FaultInjectingFileSystem(3);
        await using var store = OpenOn(fs);
        long flushesBefore = fs.FlushCount;
        using var writerInFlush = new ManualResetEventSlim();
        using var releaseWriter = new ManualResetEventSlim();
        fs.BeforeEntering = (kind, _) =>
        {
            if (kind == FaultOperationKind.Flush && !writerInFlush.IsSet)
            {
                writerInFlush.Set();
                releaseWriter.Wait();
            }
        };

        // The first write's commit is held in its flush while 199 more are queued behind it.
        var writes = new List<Task<PutResponse>> { store.PutAsync(new PutRequest { Key = B("k0"), Value = B("v") }).AsTask() };
        writerInFlush.WaitOrFail("the first commit reaching its flush");
        writes.AddRange(Enumerable.Range(1, 199).Select(i => store.PutAsync(new PutRequest { Key = B($"k{i}"), Value = B("v") }).AsTask()));
        releaseWriter.Set();
        Task.WhenAll(writes).WaitOrFail("the writes");
        fs.BeforeEntering = null;

        // A synced commit flushes twice (pages, then meta page): one commit for the first write, one for the other 199.
        Assert.That(fs.FlushCount - flushesBefore, Is.EqualTo(4));
        Assert.That(store.Revision, Is.EqualTo(201));
        Assert.That(writes.Select(w => w.Result.Header.Revision), Is.EqualTo(Enumerable.Range(2, 200).Select(r => (long)r)), "answered in queue order");
    }

    /// <summary>
    /// The pending batch keeps thousands of writes in segments of 1,024 entries and their values in
    /// shared 64 KiB chunks (large ones in arrays of their own): every uncommitted revision reads
    /// back as written, at its own revision, and the hash over the uncommitted batch equals the
    /// hash once it is committed.
    /// </summary>
    [Test]
    public async Task ThousandsOfUncommittedWritesReadBackAtEveryRevisionAndHashAsWhenCommitted()
    {
        var fs = new FaultInjectingFileSystem(5);
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync, BatchInterval = MvccStoreOptions.MaxBatchInterval };
        await using var store = OpenOn(fs, options);
        long flushesBefore = fs.FlushCount;
        const int Writes = 3_000;
        var written = new Dictionary<long, (string Key, string? Value)>();
        for (int i = 0; i < Writes; i++)
        {
            string key = $"k{i % 500:D3}";
            if (i % 97 == 96)
            {
                var deleted = await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(key) });
                if (deleted.Deleted == 1)
                {
                    written[deleted.Header.Revision] = (key, null);
                }

                continue;
            }

            // Every 250th value is larger than a quarter chunk, so it gets an array of its own.
            string value = i % 250 == 0 ? new string((char)('a' + (i % 26)), 20_000) : $"v{i}";
            var put = await store.PutAsync(new PutRequest { Key = B(key), Value = B(value) });
            written[put.Header.Revision] = (key, value);
        }

        Assert.That(fs.FlushCount, Is.EqualTo(flushesBefore), "the whole run is one uncommitted batch");
        foreach (var (revision, (key, value)) in written)
        {
            var kvs = store.Get(key, revision).Kvs;
            Assert.That(kvs.Select(kv => S(kv.Value)), Is.EqualTo(value is null ? Array.Empty<string>() : new[] { value }), $"{key} at revision {revision}");
        }

        var uncommitted = store.HashKV();
        await store.SyncAsync();
        Assert.That(fs.FlushCount, Is.GreaterThan(flushesBefore));
        var committed = store.HashKV();
        Assert.That((committed.Hash, committed.HashRevision), Is.EqualTo((uncommitted.Hash, uncommitted.HashRevision)), "the hash of the batch before and after its commit");
    }
}
