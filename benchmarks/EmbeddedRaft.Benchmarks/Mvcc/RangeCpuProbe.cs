using System.Globalization;
using System.Text;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// <c>range-cpu [--reads 500000] [--rounds 5] [--count-only] [--evict-lines N] [--batch N]</c>: what one single-key range costs the store itself,
/// on one thread, with figures a loaded machine blurs less than a cluster's: one
/// <see cref="MvccStore"/> (no-sync) filled with store-load's data (100,000 keys
/// <c>/store-load/000042</c> of 1 KiB), then rounds of serializable single-key ranges of keys drawn at
/// random (seed 7) on the calling thread, each round timed by that thread's CPU time
/// (<see cref="ThreadCpuClock"/>, nanoseconds) and its allocated bytes; per range, every round
/// and the median. No Raft, no read-index round, no load generator: the key index lookup, the B+tree
/// lookup, the value's copy and the response (docs/benchmarks.md, "Replicated reads, session 11").
/// <c>--batch N</c>: the ranges read N at a time, as a linearizable read batch reads a read-index
/// group's single-key reads (<see cref="MvccStore.RangeSinglesValidated"/>, slices of 64, their
/// lookups' misses overlapped; docs/benchmarks.md, "Linearizable reads, session 27").
/// </summary>
internal static class RangeCpuProbe
{
    private const int KeyCount = 100_000;
    private const int WarmupReads = 300_000;

    public static async Task<int> RunAsync(string[] args)
    {
        CommandLine.RefuseUnknown(args, ["--reads", "--rounds", "--evict-lines", "--batch"], ["--count-only"]);
        int reads = CommandLine.Option(args, "--reads", 500_000);
        int rounds = CommandLine.Option(args, "--rounds", 5);

        // --count-only: ranges that only count (the key index lookup, without the B+tree read).
        // --evict-lines N: after each range, N reads of random cache lines of a 256 MiB array, as a
        // read's B+tree leaf and value would evict the index between lookups; the same reads are
        // timed alone in each round and subtracted, so the figure is the range's own CPU.
        bool countOnly = args.Contains("--count-only");
        int evictLines = CommandLine.Option(args, "--evict-lines", 0);
        int batch = CommandLine.Option(args, "--batch", 0);
        if (batch > 0 && evictLines > 0)
        {
            throw new ArgumentException("--batch reads many ranges between two evictions: use one of --batch and --evict-lines.");
        }

        byte[] evict = evictLines > 0 ? new byte[256 << 20] : [];
        for (int i = 0; i < evict.Length; i += 4096)
        {
            evict[i] = 1;
        }
        string directory = Path.Combine(Path.GetTempPath(), $"embeddedraft-range-cpu-{Environment.ProcessId}");
        var keys = Enumerable.Range(0, KeyCount).Select(i => Encoding.ASCII.GetBytes($"/store-load/{i:D6}")).ToArray();
        var value = new byte[1024];
        new Random(1).NextBytes(value);
        try
        {
            await using var store = MvccStore.Open(directory, new MvccStoreOptions { Durability = MvccDurability.NoSync });
            var pending = new List<Task>();
            foreach (var key in keys)
            {
                pending.Add(store.PutAsync(new PutRequest { Key = key, Value = value }).AsTask());
                if (pending.Count == 1_000)
                {
                    await Task.WhenAll(pending);
                    pending.Clear();
                }
            }

            await Task.WhenAll(pending);
            await store.SyncAsync();
            var requests = keys.Select(k => new RangeRequest { Key = k, CountOnly = countOnly }).ToArray();
            var random = new Random(7);
            var order = Enumerable.Range(0, Math.Max(reads, WarmupReads)).Select(_ => random.Next(KeyCount)).ToArray();
            long check = 0;
            var batchRequests = new RangeRequest[Math.Max(1, batch)];
            var batchResponses = new RangeResponse?[batchRequests.Length];
            var batchErrors = new Exception?[batchRequests.Length];
            // The ranges of order[from..end), batch at a time.
            long ReadBatch(int from, int end)
            {
                int length = Math.Min(batch, end - from);
                for (int j = 0; j < length; j++)
                {
                    batchRequests[j] = requests[order[from + j]];
                }

                store.RangeSinglesValidated(batchRequests.AsSpan(0, length), batchResponses.AsSpan(0, length), batchErrors.AsSpan(0, length));
                long returned = 0;
                for (int j = 0; j < length; j++)
                {
                    returned += Returned(batchResponses[j] ?? throw new InvalidOperationException("A batched range failed.", batchErrors[j]));
                }

                return returned;
            }

            for (int i = 0; i < WarmupReads; i += Math.Max(1, batch))
            {
                // Until the range path runs its tier-1 code.
                check += batch > 0 ? ReadBatch(i, WarmupReads) : Returned(store.Range(requests[order[i]]));
            }

            var microseconds = new List<double>();
            double bytesPerRange = 0;
            long evicted = 0;
            for (int round = 0; round < rounds; round++)
            {
                long evictNanoseconds = 0;
                if (evictLines > 0)
                {
                    long evictBefore = ThreadCpuClock.Nanoseconds();
                    for (int i = 0; i < reads; i++)
                    {
                        evicted += CacheLineEvictor.Evict(evict, i, evictLines);
                    }

                    evictNanoseconds = ThreadCpuClock.Nanoseconds() - evictBefore;
                }

                long cpuBefore = ThreadCpuClock.Nanoseconds();
                long bytesBefore = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < reads && batch > 0; i += batch)
                {
                    check += ReadBatch(i, reads);
                }

                for (int i = 0; i < reads && batch == 0; i++)
                {
                    check += Returned(store.Range(requests[order[i]]));
                    if (evictLines > 0)
                    {
                        evicted += CacheLineEvictor.Evict(evict, i, evictLines);
                    }
                }

                microseconds.Add((ThreadCpuClock.Nanoseconds() - cpuBefore - evictNanoseconds) / 1_000.0 / reads);
                bytesPerRange = (double)(GC.GetAllocatedBytesForCurrentThread() - bytesBefore) / reads;
            }

            if (check != (long)(WarmupReads + ((long)reads * rounds)) * value.Length)
            {
                throw new InvalidOperationException(countOnly ? "A count-only range did not count its key." : "A range did not return the 1 KiB value it was loaded with.");
            }

            GC.KeepAlive(evicted);

            var sorted = microseconds.Order().ToArray();
            Console.WriteLine(FormattableString.Invariant(
                $"range-cpu{(countOnly ? " --count-only" : "")}{(batch > 0 ? $" --batch {batch}" : "")}{(evictLines > 0 ? $" --evict-lines {evictLines} (subtracted)" : "")}: thread CPU us per range, {rounds} rounds of {reads}: {string.Join(" ", microseconds.Select(m => m.ToString("F3", CultureInfo.InvariantCulture)))}; median {sorted[sorted.Length / 2]:F3}; {bytesPerRange:F0} B allocated per range; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));
            return 0;
        }
        finally
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>The value's length of a full range, or (count only) 1,024 for a range that counted its one key and returned none.</summary>
    private static long Returned(RangeResponse response) =>
        response.Kvs.Count == 0 ? (response.Count == 1 ? 1024 : 0) : response.Kvs[0].Value.Length;
}
