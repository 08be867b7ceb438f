using System.Globalization;
using EmbeddedRaft.Benchmarks.BTree;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>Shared data and helpers of the MVCC benchmarks.</summary>
internal static class MvccWorkload
{
    public const string Store = "MvccStore";
    public const string RawBTree = "RawBTree";
    public const int KeySizeBytes = BTreeVersusLmdb.KeySizeBytes;
    public const int KeyCount = 1_000_000;

    /// <summary>Writes kept in flight by the MvccStore side (as many concurrent clients): one batch's
    /// worth. Synced group commit cuts a batch whenever the writer finds its queue empty, so with one
    /// submitting client the batches come out smaller than this (about 6,500-9,000 writes, 110-160
    /// commits per 1,000,000 puts; the batched-put rows print the count per iteration).</summary>
    public const int WritesInFlight = 10_000;

    /// <summary>Keys per synced commit of the raw tree: MvccStore's default batch limit.</summary>
    public const int RawKeysPerCommit = 10_000;

    public static ReadOnlyMemory<byte> Key(byte[] keys, int index) => keys.AsMemory(index * KeySizeBytes, KeySizeBytes);

    public static string NewDirectory(string engine)
    {
        string directory = Path.Combine(Path.GetTempPath(), $"mvcc-bench-{engine}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        return directory;
    }

    public static async Task<IMvccWorkloadEngine> CreateAsync(string engine, string directory) => engine switch
    {
        Store => await MvccStoreEngine.OpenAsync(directory).ConfigureAwait(false),
        RawBTree => new RawBTreeEngine(directory),
        _ => throw new ArgumentOutOfRangeException(nameof(engine), engine, "Unknown engine."),
    };

    /// <summary>Runs <paramref name="count"/> asynchronous operations keeping at most
    /// <paramref name="window"/> in flight, as that many concurrent clients would.</summary>
    public static async Task RunWindowedAsync(int count, int window, Func<int, Task> start)
    {
        var inFlight = new Task?[window];
        for (int i = 0; i < count; i++)
        {
            int slot = i % window;
            if (inFlight[slot] is Task previous)
            {
                await previous.ConfigureAwait(false);
            }

            inFlight[slot] = start(i);
        }

        foreach (Task? task in inFlight)
        {
            if (task is not null)
            {
                await task.ConfigureAwait(false);
            }
        }
    }

    /// <summary>As <see cref="RunWindowedAsync(int, int, Func{int, Task})"/> for operations that return a
    /// <see cref="ValueTask{TResult}"/>, each awaited once and never turned into a task, as a client awaiting its
    /// own write would. Returns how many of the awaits inside the loop found their operation not yet complete
    /// (the client had to wait: about once per group commit when writes are batched).</summary>
    public static async Task<long> RunWindowedAsync<T>(int count, int window, Func<int, ValueTask<T>> start)
    {
        var inFlight = new ValueTask<T>[window];
        long waits = 0;
        for (int i = 0; i < count; i++)
        {
            int slot = i % window;
            if (i >= window)
            {
                waits += inFlight[slot].IsCompleted ? 0 : 1;
                await inFlight[slot].ConfigureAwait(false);
            }

#pragma warning disable CA2012 // each slot's ValueTask is awaited exactly once, before the slot is reused or at the end
            inFlight[slot] = start(i);
#pragma warning restore CA2012
        }

        for (int slot = 0; slot < Math.Min(count, window); slot++)
        {
            await inFlight[slot].ConfigureAwait(false);
        }

        return waits;
    }

    /// <summary>Appends a figure that BenchmarkDotNet's table does not show (memory, stalls) to the
    /// console and to /tmp/mvcc-bench-results.txt.</summary>
    public static void AppendResult(string line)
    {
        string stamped = string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:u} {line}");
        Console.WriteLine(stamped);
        File.AppendAllText(Path.Combine(Path.GetTempPath(), "mvcc-bench-results.txt"), stamped + Environment.NewLine);
    }

    /// <summary>The value at <paramref name="quantile"/> (0..1) of <paramref name="sorted"/>, nearest rank.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double quantile) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(quantile * sorted.Count) - 1, 0, sorted.Count - 1)];
}
