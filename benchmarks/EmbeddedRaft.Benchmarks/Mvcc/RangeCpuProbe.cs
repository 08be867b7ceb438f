using System.Globalization;
using System.Text;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// <c>range-cpu [--reads 500000] [--rounds 5]</c>: what one single-key range costs the store itself,
/// on one thread, with figures a loaded machine blurs less than a cluster's: one
/// <see cref="MvccStore"/> (no-sync) filled with store-load's data (100,000 keys
/// <c>/store-load/000042</c> of 1 KiB), then rounds of serializable single-key ranges of keys drawn at
/// random (seed 7) on the calling thread, each round timed by that thread's CPU time
/// (<c>/proc/thread-self/schedstat</c>, nanoseconds) and its allocated bytes; per range, every round
/// and the median. No Raft, no read-index round, no load generator: the key index lookup, the B+tree
/// lookup, the value's copy and the response (docs/benchmarks.md, "Replicated reads, session 11").
/// </summary>
internal static class RangeCpuProbe
{
    private const int KeyCount = 100_000;
    private const int WarmupReads = 300_000;

    public static async Task<int> RunAsync(string[] args)
    {
        CommandLine.RefuseUnknown(args, ["--reads", "--rounds"], []);
        int reads = CommandLine.Option(args, "--reads", 500_000);
        int rounds = CommandLine.Option(args, "--rounds", 5);
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
            var requests = keys.Select(k => new RangeRequest { Key = k }).ToArray();
            var random = new Random(7);
            var order = Enumerable.Range(0, Math.Max(reads, WarmupReads)).Select(_ => random.Next(KeyCount)).ToArray();
            long check = 0;
            for (int i = 0; i < WarmupReads; i++)
            {
                // Until the range path runs its tier-1 code.
                check += store.Range(requests[order[i]]).Kvs[0].Value.Length;
            }

            var microseconds = new List<double>();
            double bytesPerRange = 0;
            for (int round = 0; round < rounds; round++)
            {
                long cpuBefore = ThreadCpuNanoseconds();
                long bytesBefore = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < reads; i++)
                {
                    check += store.Range(requests[order[i]]).Kvs[0].Value.Length;
                }

                microseconds.Add((ThreadCpuNanoseconds() - cpuBefore) / 1_000.0 / reads);
                bytesPerRange = (double)(GC.GetAllocatedBytesForCurrentThread() - bytesBefore) / reads;
            }

            if (check != (long)(WarmupReads + ((long)reads * rounds)) * value.Length)
            {
                throw new InvalidOperationException("A range did not return the 1 KiB value it was loaded with.");
            }

            var sorted = microseconds.Order().ToArray();
            Console.WriteLine(FormattableString.Invariant(
                $"range-cpu: thread CPU us per range, {rounds} rounds of {reads}: {string.Join(" ", microseconds.Select(m => m.ToString("F3", CultureInfo.InvariantCulture)))}; median {sorted[sorted.Length / 2]:F3}; {bytesPerRange:F0} B allocated per range; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));
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

    private static long ThreadCpuNanoseconds() => long.Parse(File.ReadAllText("/proc/thread-self/schedstat").Split(' ')[0], CultureInfo.InvariantCulture);
}
