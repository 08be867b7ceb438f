using System.Globalization;
using System.Text;
using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// <c>index-put-cpu [--keys 100000] [--revisions 10] [--puts 200000] [--rounds 5] [--evict-lines N]</c>: the
/// key index's part of one put of an existing key, as the MVCC writer does it (<c>WritePut</c>: one
/// search, the key's creation and version at the revision being written, then the put recorded), on
/// one thread, timed by that thread's CPU (<see cref="ThreadCpuClock"/>): no B+tree, no value,
/// no lock, so a loaded machine blurs the figure less than the store's rows. The index holds
/// store-load's keys (<c>/store-load/000042</c>), added in random order (the chunks split as a
/// store's do), then each written again at random until they average <c>--revisions</c> revisions
/// (history objects and their revision arrays, as between compactions); then rounds of random puts
/// (seed 25), each round's thread CPU per put, and the median. <c>--evict-lines N</c>: after each
/// put, N reads of random cache lines of a 256 MiB array (the writer's B+tree pages, pending batch
/// and 1 KiB value evict the index between its puts), timed alone in each round and subtracted
/// (docs/benchmarks.md, "MVCC key index, session 25").
/// </summary>
internal static class KeyIndexPutProbe
{
    public static int Run(string[] args)
    {
        CommandLine.RefuseUnknown(args, ["--keys", "--revisions", "--puts", "--rounds", "--evict-lines"], []);
        int keyCount = CommandLine.Option(args, "--keys", 100_000);
        int revisions = CommandLine.Option(args, "--revisions", 10);
        int puts = CommandLine.Option(args, "--puts", 200_000);
        int rounds = CommandLine.Option(args, "--rounds", 5);
        int evictLines = CommandLine.Option(args, "--evict-lines", 0);
        byte[] evict = evictLines > 0 ? new byte[256 << 20] : [];
        for (int i = 0; i < evict.Length; i += 4096)
        {
            evict[i] = 1;
        }

        var keys = Enumerable.Range(0, keyCount).Select(i => Encoding.ASCII.GetBytes($"/store-load/{i:D6}")).ToArray();
        var random = new Random(25);
        var index = new KeyIndex();
        long main = 1;
        foreach (int k in Enumerable.Range(0, keyCount).OrderBy(_ => random.Next()).ToArray())
        {
            if (index.Find(keys[k], out var position))
            {
                throw new InvalidOperationException("A key was found before it was added.");
            }

            index.Add(position, keys[k], new Revision(++main, 0));
        }

        // Every key to about --revisions revisions, then one more round of puts so the put path runs its tier-1 code.
        long check = 0;
        for (long i = 0; i < ((long)keyCount * (revisions - 1)) + puts; i++)
        {
            check += PutOnce(index, keys[random.Next(keyCount)], ++main);
        }

        var order = new int[puts];
        var microseconds = new List<double>();
        long evicted = 0;
        for (int round = 0; round < rounds; round++)
        {
            for (int i = 0; i < puts; i++)
            {
                order[i] = random.Next(keyCount);
            }

            long evictNanoseconds = 0;
            if (evictLines > 0)
            {
                long evictBefore = ThreadCpuClock.Nanoseconds();
                for (int i = 0; i < puts; i++)
                {
                    evicted += CacheLineEvictor.Evict(evict, i, evictLines);
                }

                evictNanoseconds = ThreadCpuClock.Nanoseconds() - evictBefore;
            }

            long cpuBefore = ThreadCpuClock.Nanoseconds();
            for (int i = 0; i < puts; i++)
            {
                check += PutOnce(index, keys[order[i]], ++main);
                if (evictLines > 0)
                {
                    evicted += CacheLineEvictor.Evict(evict, i, evictLines);
                }
            }

            microseconds.Add((ThreadCpuClock.Nanoseconds() - cpuBefore - evictNanoseconds) / 1_000.0 / puts);
        }

        if (check <= 0)
        {
            throw new InvalidOperationException("A put found no earlier version of its key.");
        }

        GC.KeepAlive(evicted);
        var sorted = microseconds.Order().ToArray();
        Console.WriteLine(FormattableString.Invariant(
            $"index-put-cpu: {keyCount:N0} keys, {revisions} revisions each to start, {(main - 1) / (double)keyCount:F1} at the end{(evictLines > 0 ? $", --evict-lines {evictLines} (subtracted)" : "")}: thread CPU us per put, {rounds} rounds of {puts:N0}: {string.Join(" ", microseconds.Select(m => m.ToString("F3", CultureInfo.InvariantCulture)))}; median {sorted[sorted.Length / 2]:F3}; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}"));
        return 0;
    }

    /// <summary>What the writer asks the index for a put of an existing key, and the put recorded; returns the new version (consumed, so nothing is optimized away).</summary>
    private static long PutOnce(KeyIndex index, byte[] key, long main)
    {
        if (!index.Find(key, out var position))
        {
            throw new InvalidOperationException("A key added before was not found.");
        }

        long version = index.TryGet(position, main, out _, out var created, out long current) ? current + 1 : 1;
        index.Put(position, new Revision(main, 0));
        return version + (created.Main > 0 ? 0 : -1);
    }
}
