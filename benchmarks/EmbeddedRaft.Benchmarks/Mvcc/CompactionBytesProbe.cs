using System.Diagnostics;
using System.Globalization;
using System.Text;
using EmbeddedRaft.Benchmarks.IO;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// <c>compaction-bytes [--keys 100000] [--second-puts N] [--value-bytes 1024] [--puts-after 100000] [--rounds 2]
/// [--in-flight 256] [--seed 27] [--dir DIR]</c>: what one physical compaction writes to the store's B+tree,
/// store-load's way: a store opened as a replicated member's (<see cref="MvccDurability.NoSync"/>, the
/// defaults otherwise: 16 KiB pages, 1,000 revisions per compaction step, 100 ms batches) on the real disk,
/// preloaded with <c>--keys</c> keys in order (<c>/store-load/000042</c>, 1 KiB values), then
/// <c>--second-puts</c> puts (default: as many as keys) of keys drawn uniformly at random (seeded: a
/// put row's superseded revisions lie all over the first revisions), then rounds of: one physical compaction
/// at the current revision, then <c>--puts-after</c> such puts (the next put row). Every byte the store
/// writes goes through a counting file system; per phase it prints bytes written to <c>mvcc.db</c>, write
/// calls, pages, commits (B+tree transaction ids), wall time, and the key bucket's shape after it (leaf pages,
/// branch pages, bytes per leaf page, leaves at most half full, file size, free pages), read with the store
/// closed. Bytes, not time, are the figures (docs/benchmarks.md, "B+tree compaction, session 27").
/// </summary>
internal static class CompactionBytesProbe
{
    /// <summary>Stands for "the entries the phase removed from the key bucket" as a phase's operation count.</summary>
    private const long RemovedEntries = -1;

    public static async Task<int> RunAsync(string[] args)
    {
        CommandLine.RefuseUnknown(args, ["--keys", "--second-puts", "--value-bytes", "--puts-after", "--rounds", "--in-flight", "--seed", "--dir"], []);
        int keyCount = CommandLine.Option(args, "--keys", 100_000);
        int secondPuts = CommandLine.Option(args, "--second-puts", keyCount);
        int valueBytes = CommandLine.Option(args, "--value-bytes", 1024);
        int putsAfter = CommandLine.Option(args, "--puts-after", keyCount);
        int rounds = CommandLine.Option(args, "--rounds", 2);
        int inFlight = CommandLine.Option(args, "--in-flight", 256);
        int seed = CommandLine.Option(args, "--seed", 27);
        int dirAt = Array.IndexOf(args, "--dir");
        string root = dirAt >= 0 ? args[dirAt + 1] : Path.Combine(Path.GetTempPath(), "compaction-bytes");
        string directory = Path.Combine(root, $"store-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        Console.WriteLine($"compaction-bytes: keys {keyCount}, second puts {secondPuts}, value {valueBytes} B, puts after {putsAfter}, rounds {rounds}, in flight {inFlight}, seed {seed}, {directory}");

        var keys = Enumerable.Range(0, keyCount).Select(i => (ReadOnlyMemory<byte>)Encoding.ASCII.GetBytes($"/store-load/{i:D6}")).ToArray();
        var value = new byte[valueBytes];
        new Random(seed).NextBytes(value);
        var random = new Random(seed);
        var files = new CountingFileSystem();
        var options = new MvccStoreOptions { Durability = MvccDurability.NoSync };
        Console.WriteLine("phase            | s     | MB to mvcc.db | write calls | pages   | commits | B/op    | leaf pages | branch pages | B per leaf | leaves <= 1/2 | entries   | file MB | free pages");
        try
        {
            long txid = Shape(directory, options, "created", 0, 0, files, null, 0);
            var store = MvccStore.Open(files, directory, options);
            try
            {
                var watch = Stopwatch.StartNew();
                var before = files.Snapshot();
                await PutAllAsync(store, keys, Enumerable.Range(0, keyCount).ToArray(), value, inFlight);
                (store, txid) = await ReopenAsync(store, files, directory, options, $"preload {keyCount}", before, watch, txid, keyCount);

                watch.Restart();
                before = files.Snapshot();
                await PutAllAsync(store, keys, Enumerable.Range(0, secondPuts).Select(_ => random.Next(keyCount)).ToArray(), value, inFlight);
                (store, txid) = await ReopenAsync(store, files, directory, options, $"puts {secondPuts}", before, watch, txid, secondPuts);

                for (int round = 1; round <= rounds; round++)
                {
                    long revision = store.Revision;
                    watch.Restart();
                    before = files.Snapshot();
                    await store.CompactAsync(revision, physical: true);
                    (store, txid) = await ReopenAsync(store, files, directory, options, $"compact {round}", before, watch, txid, RemovedEntries);

                    watch.Restart();
                    before = files.Snapshot();
                    await PutAllAsync(store, keys, Enumerable.Range(0, putsAfter).Select(_ => random.Next(keyCount)).ToArray(), value, inFlight);
                    (store, txid) = await ReopenAsync(store, files, directory, options, $"puts after {round}", before, watch, txid, putsAfter);
                }
            }
            finally
            {
                await store.DisposeAsync();
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        Console.WriteLine("(B/op: bytes to mvcc.db per put, or per removed revision for a compaction, the close's sync included; commits: B+tree transactions, the close's own sync and the shape's reopen included)");
        return 0;
    }

    private static async Task PutAllAsync(MvccStore store, ReadOnlyMemory<byte>[] keys, int[] order, byte[] value, int inFlight)
    {
        var pending = new Queue<Task<PutResponse>>();
        foreach (int key in order)
        {
            if (pending.Count >= inFlight)
            {
                await pending.Dequeue();
            }

            pending.Enqueue(store.PutAsync(new PutRequest { Key = keys[key], Value = value }).AsTask());
        }

        while (pending.Count > 0)
        {
            await pending.Dequeue();
        }
    }

    /// <summary>Closes the store (its sync counted in the phase), prints the phase and the key bucket's shape, and opens it again.</summary>
    private static async Task<(MvccStore Store, long Txid)> ReopenAsync(
        MvccStore store, CountingFileSystem files, string directory, MvccStoreOptions options, string phase,
        CountingFileSystem.Counts before, Stopwatch watch, long txid, long operations)
    {
        await store.DisposeAsync();
        double seconds = watch.Elapsed.TotalSeconds;
        long next = Shape(directory, options, phase, seconds, operations, files, before, txid);
        return (MvccStore.Open(files, directory, options), next);
    }

    private static long s_entries;

    private static long Shape(string directory, MvccStoreOptions options, string phase, double seconds, long operations, CountingFileSystem files, CountingFileSystem.Counts? before, long txid)
    {
        var after = files.Snapshot();
        using var db = BTreeDatabase.Open(PhysicalFileSystem.Instance, Path.Combine(directory, "mvcc.db"), options.BTree);
        var statistics = db.GetStatistics();
        BucketShape shape;
        using (var tx = db.BeginRead())
        {
            var bucket = tx.OpenBucket(MetaKeys.KeyBucket);
            shape = bucket is null
                ? new BucketShape { LeafPages = 0, BranchPages = 0, Entries = 0, LeafUsedBytes = 0, LeavesAtMostHalfFull = 0, PageSizeBytes = statistics.PageSizeBytes }
                : BucketShape.Of(tx, bucket);
        }

        if (operations == RemovedEntries)
        {
            operations = s_entries - shape.Entries;
        }

        s_entries = shape.Entries;
        long bytes = before is null ? 0 : after.Bytes - before.Value.Bytes;
        long calls = before is null ? 0 : after.Calls - before.Value.Calls;
        string perOp = operations > 0 ? (bytes / (double)operations).ToString("F0", CultureInfo.InvariantCulture) : "-";
        double perLeaf = shape.LeafPages == 0 ? 0 : shape.LeafUsedBytes / (double)shape.LeafPages;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{phase,-16} | {seconds,5:F2} | {bytes / 1e6,13:F1} | {calls,11} | {bytes / statistics.PageSizeBytes,7} | {statistics.Txid - txid,7} | {perOp,7} | {shape.LeafPages,10} | {shape.BranchPages,12} | {perLeaf,10:F0} | {shape.LeavesAtMostHalfFull,13} | {shape.Entries,9} | {statistics.FileSizeBytes / 1e6,7:F1} | {statistics.FreePageCount}"));
        return statistics.Txid;
    }

    /// <summary>The real file system, counting the bytes and calls written to files named <c>mvcc.db</c>.</summary>
    private sealed class CountingFileSystem() : ForwardingFileSystem(PhysicalFileSystem.Instance)
    {
        private long _bytes;
        private long _calls;

        public readonly record struct Counts(long Bytes, long Calls);

        public Counts Snapshot() => new(Interlocked.Read(ref _bytes), Interlocked.Read(ref _calls));

        public override IStorageFile Open(string path, FileOpenMode mode)
        {
            var file = Inner.Open(path, mode);
            return Path.GetFileName(path) == "mvcc.db" ? new CountedFile(file, this) : file;
        }

        private void Count(long bytes)
        {
            Interlocked.Add(ref _bytes, bytes);
            Interlocked.Increment(ref _calls);
        }

        private sealed class CountedFile(IStorageFile inner, CountingFileSystem owner) : ForwardingStorageFile(inner)
        {
            public override void Write(long offset, ReadOnlySpan<byte> data)
            {
                owner.Count(data.Length);
                Inner.Write(offset, data);
            }

            public override void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers)
            {
                long bytes = 0;
                foreach (var buffer in buffers)
                {
                    bytes += buffer.Length;
                }

                owner.Count(bytes);
                Inner.Write(offset, buffers);
            }
        }
    }
}
