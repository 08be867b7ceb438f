using System.Diagnostics;
using EmbeddedRaft.Benchmarks.IO;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Benchmarks.Wal;

/// <summary>
/// <c>wal-flush [--logs 3] [--batches 128,512,1024] [--seconds 20] [--record-bytes 1024] [--reuse on|off] [--release-every 10000]</c>:
/// what a WAL flush costs per byte with the RaftNode 1,024-in-flight row's shape but nothing else
/// running. <c>--logs</c> write-ahead logs on the real disk in one process (each in its own
/// directory under the temp path, default options), each driven by its own thread: batches of N
/// records of <c>--record-bytes</c> appended unsynced, then one synced append (the Raft log's
/// one synced write per Ready). Every <c>--release-every</c> records a log releases the segments
/// wholly before its last 64 MiB worth of records, off the appending thread (as the Raft log does
/// after a snapshot), so segments are cut and released as in the cluster. <c>--reuse off</c> keeps a
/// reader open on each log (a release then keeps no spare: every cut creates a fresh file and every
/// release unlinks, the behaviour before session 26); on, cuts recycle the released segments. Prints per batch size: MB/s per log and in
/// all, the flush (fdatasync of a segment) p50/p90/p99 and its bytes, the synced batch's p50, cuts
/// and releases.
/// </summary>
internal static class WalFlushCostProbe
{
    public static async Task<int> RunAsync(string[] args)
    {
        CommandLine.RefuseUnknown(args, ["--logs", "--batches", "--seconds", "--record-bytes", "--reuse", "--release-every"], []);
        int logs = CommandLine.Option(args, "--logs", 3);
        int seconds = CommandLine.Option(args, "--seconds", 20);
        int recordBytes = CommandLine.Option(args, "--record-bytes", 1024);
        int releaseEvery = CommandLine.Option(args, "--release-every", 10_000);
        int at = Array.IndexOf(args, "--batches");
        int[] batches = at >= 0 && at + 1 < args.Length ? CommandLine.Numbers<int>("--batches", args[at + 1]) : [128, 512, 1024];
        at = Array.IndexOf(args, "--reuse");
        bool reuse = at < 0 || (at + 1 < args.Length ? args[at + 1] switch
        {
            "on" => true,
            "off" => false,
            _ => throw new CommandLineException($"--reuse takes on or off, not '{args[at + 1]}'."),
        } : throw new CommandLineException("--reuse needs a value."));

        Console.WriteLine($"wal-flush: {logs} logs, {recordBytes} B records, {seconds} s per batch size, segment reuse {(reuse ? "on" : "off")}, release every {releaseEvery} records; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| records per batch | MB/s per log (each) | MB/s in all | flush p50 / p90 / p99 ms | bytes per flush (mean KiB) | synced batch p50 ms | cuts | releases | release ms (mean) |");
        Console.WriteLine("|---:|---|---:|---|---:|---:|---:|---:|---:|");
        foreach (int batch in batches)
        {
            string root = BenchmarkDirectory.Create("wal-flush");
            try
            {
                var fs = new ProbeFileSystem(PhysicalFileSystem.Instance);
                var runs = new Task<LogRun>[logs];
                using var start = new Barrier(logs);
                for (int i = 0; i < logs; i++)
                {
                    string directory = Path.Combine(root, $"log-{i}");
                    runs[i] = Task.Factory.StartNew(() => RunLog(fs, directory, batch, recordBytes, releaseEvery, reuse, TimeSpan.FromSeconds(seconds), start), TaskCreationOptions.LongRunning);
                }

                var results = await Task.WhenAll(runs);
                var flushes = fs.Flushes();
                flushes.Sort();
                double total = results.Sum(r => r.Bytes / r.Seconds) / 1e6;
                string each = string.Join(" / ", results.Select(r => (r.Bytes / r.Seconds / 1e6).ToString("F1", System.Globalization.CultureInfo.InvariantCulture)));
                var batchTimes = results.SelectMany(r => r.BatchMs).Order().ToList();
                long releases = results.Sum(r => r.Releases);
                double releaseMs = releases == 0 ? 0 : results.Sum(r => r.ReleaseMs) / releases;
                Console.WriteLine($"| {batch:N0} | {each} | {total:F1} | {P(flushes, 0.5):F2} / {P(flushes, 0.9):F2} / {P(flushes, 0.99):F2} | {fs.BytesPerFlush() / 1024:F0} | {P(batchTimes, 0.5):F2} | {results.Sum(r => r.Cuts)} | {releases} | {releaseMs:F1} |");
            }
            finally
            {
                BenchmarkDirectory.Delete(root);
            }
        }

        return 0;
    }

    private static double P(List<double> sorted, double q) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))];

    private static LogRun RunLog(ProbeFileSystem fs, string directory, int batch, int recordBytes, int releaseEvery, bool reuse, TimeSpan duration, Barrier start)
    {
        var payload = new byte[recordBytes];
        new Random(7).NextBytes(payload);
        var run = new LogRun();
        using var log = WriteAheadLog.Open(fs, directory);
        // No spare is kept while a reader of the log is open; this one never reads (it opens no file).
        using var keepsNoSpare = reuse ? null : log.ReadFrom(0UL);
        long recordsPerSegment = WalOptions.DefaultSegmentSizeBytes / (recordBytes + 32);
        Task release = Task.CompletedTask;
        int segments = log.SegmentPaths.Count;
        ulong index = 0;
        start.SignalAndWait();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            long began = Stopwatch.GetTimestamp();
            for (int i = 0; i < batch; i++)
            {
                index++;
                var appended = log.AppendAsync(1, payload, index, sync: i == batch - 1);
                if (i == batch - 1)
                {
                    appended.AsTask().GetAwaiter().GetResult();
                }
                else if (!appended.IsCompletedSuccessfully)
                {
                    appended.AsTask().GetAwaiter().GetResult(); // waits for buffer space
                }
            }

            run.BatchMs.Add(Stopwatch.GetElapsedTime(began).TotalMilliseconds);
            run.Bytes += (long)batch * recordBytes;
            int now = log.SegmentPaths.Count;
            if (now > segments)
            {
                run.Cuts += now - segments;
            }

            if (index % (ulong)releaseEvery < (ulong)batch && index > (ulong)recordsPerSegment && release.IsCompleted)
            {
                ulong before = index - (ulong)recordsPerSegment;
                release = Task.Run(() =>
                {
                    long t = Stopwatch.GetTimestamp();
                    int released = log.ReleaseBefore(before);
                    if (released > 0)
                    {
                        lock (run)
                        {
                            run.Releases += released;
                            run.ReleaseMs += Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                        }
                    }
                });
            }

            segments = log.SegmentPaths.Count;
        }

        run.Seconds = clock.Elapsed.TotalSeconds;
        release.GetAwaiter().GetResult();
        return run;
    }

    private sealed class LogRun
    {
        public List<double> BatchMs { get; } = [];

        public long Bytes { get; set; }

        public double Seconds { get; set; }

        public int Cuts { get; set; }

        public long Releases { get; set; }

        public double ReleaseMs { get; set; }
    }

    /// <summary>Passes every call through, timing each segment flush and counting the bytes written to segments before it.</summary>
    private sealed class ProbeFileSystem(IFileSystem inner) : ForwardingFileSystem(inner)
    {
        private readonly List<double> _flushMs = [];
        private long _flushedBytes;

        public List<double> Flushes()
        {
            lock (_flushMs)
            {
                return [.. _flushMs];
            }
        }

        public double BytesPerFlush()
        {
            lock (_flushMs)
            {
                return _flushMs.Count == 0 ? 0 : (double)_flushedBytes / _flushMs.Count;
            }
        }

        public override IStorageFile Open(string path, FileOpenMode mode) => new ProbeFile(Inner.Open(path, mode), this, path.EndsWith(".wal", StringComparison.Ordinal));

        private void Flushed(double ms, long bytes)
        {
            lock (_flushMs)
            {
                _flushMs.Add(ms);
                _flushedBytes += bytes;
            }
        }

        private sealed class ProbeFile(IStorageFile inner, ProbeFileSystem owner, bool segment) : ForwardingStorageFile(inner)
        {
            private long _unflushed;

            public override void Write(long offset, ReadOnlySpan<byte> data)
            {
                Inner.Write(offset, data);
                Interlocked.Add(ref _unflushed, data.Length);
            }

            public override void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers)
            {
                Inner.Write(offset, buffers);
                Interlocked.Add(ref _unflushed, buffers.Sum(b => (long)b.Length));
            }

            public override void Flush()
            {
                long bytes = Interlocked.Exchange(ref _unflushed, 0);
                long began = Stopwatch.GetTimestamp();
                Inner.Flush();
                if (segment)
                {
                    owner.Flushed(Stopwatch.GetElapsedTime(began).TotalMilliseconds, bytes);
                }
            }
        }
    }
}
