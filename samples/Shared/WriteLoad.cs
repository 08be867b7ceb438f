using System.Diagnostics;
using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Closed-loop writers, each putting fresh keys <c>sample/wNN/SSSSSSSS</c> through the member it is
/// assigned (writers are spread over every running member; followers forward to the leader).
/// Every acknowledged key is remembered with its latency, so the story can later prove that each one
/// is still there. A put that fails during a leader change has an unknown outcome (it may have been
/// committed): it is counted, never retried with the same key, and not expected either way.
/// </summary>
internal sealed class WriteLoad(StoryCluster cluster, StoryConsole console, int writers, int valueSizeBytes)
{
    /// <summary>Every key the writers put starts with this.</summary>
    public const string Prefix = "sample/";

    private static readonly TimeSpan s_callLimit = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_backoffAfterFailure = TimeSpan.FromMilliseconds(20);

    private readonly WriterState[] _writers = [.. Enumerable.Range(0, writers).Select(_ => new WriterState())];
    private long _acknowledged;
    private long _unknownOutcome;
    private long _unexpectedErrors;
    private string? _firstUnexpectedError;
    private TimeSpan _writingTime;

    /// <summary>Puts acknowledged so far.</summary>
    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    /// <summary>Puts that failed with an error a leader change causes (no leader, proposal dropped, member stopped, timed out): outcome unknown.</summary>
    public long UnknownOutcome => Interlocked.Read(ref _unknownOutcome);

    /// <summary>Puts that failed with any other error (a bug: the story fails its check).</summary>
    public long UnexpectedErrors => Interlocked.Read(ref _unexpectedErrors);

    /// <summary>The first unexpected error's message, if any.</summary>
    public string? FirstUnexpectedError => Volatile.Read(ref _firstUnexpectedError);

    /// <summary>The most recently acknowledged put (key and revision), for the follower reader; null before the first.</summary>
    public AcknowledgedPut? LastAcknowledged { get; private set; }

    /// <summary>Total time the writers ran (phases only, not the pauses between them).</summary>
    public TimeSpan WritingTime => _writingTime;

    /// <summary>Runs every writer until <paramref name="stop"/> is cancelled; puts in flight then finish.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, _writers.Length).Select(w => Task.Run(() => WriteAsync(w, stop), CancellationToken.None))).ConfigureAwait(false);
        _writingTime += clock.Elapsed;
    }

    /// <summary>Every acknowledged key and the value it was given.</summary>
    public IEnumerable<(string Key, byte[] Value)> AcknowledgedPuts()
    {
        for (int w = 0; w < _writers.Length; w++)
        {
            foreach (int sequence in _writers[w].AcknowledgedSequences)
            {
                string key = KeyOf(w, sequence);
                yield return (key, ValueOf(key, valueSizeBytes));
            }
        }
    }

    /// <summary>Latencies of every acknowledged put, in milliseconds, sorted.</summary>
    public double[] SortedLatenciesMs()
    {
        double[] all = [.. _writers.SelectMany(w => w.LatenciesMs)];
        Array.Sort(all);
        return all;
    }

    /// <summary>The key of writer <paramref name="writer"/>'s put number <paramref name="sequence"/>.</summary>
    public static string KeyOf(int writer, int sequence) => $"{Prefix}w{writer:D2}/{sequence:D8}";

    /// <summary>The value a key is put with: its own name, padded: checkable without storing it.</summary>
    public static byte[] ValueOf(string key, int valueSizeBytes)
    {
        var value = new byte[valueSizeBytes];
        value.AsSpan().Fill((byte)'.');
        Encoding.UTF8.GetBytes(key, value);
        return value;
    }

    private async Task WriteAsync(int writer, CancellationToken stop)
    {
        var state = _writers[writer];
        while (!stop.IsCancellationRequested)
        {
            var running = cluster.Running;
            if (running.Count == 0)
            {
                return;
            }

            // Writers are spread over the running members, so every member takes writes.
            var member = running[writer % running.Count];
            int sequence = state.NextSequence++;
            string key = KeyOf(writer, sequence);
            long started = Stopwatch.GetTimestamp();
            try
            {
                // Not cancelled by `stop`: a put in flight when the phase ends finishes normally.
                using var limit = new CancellationTokenSource(s_callLimit);
                var response = await member.RunningStore.PutAsync(
                    new PutRequest { Key = Encoding.UTF8.GetBytes(key), Value = ValueOf(key, valueSizeBytes) }, limit.Token).ConfigureAwait(false);
                state.LatenciesMs.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                state.AcknowledgedSequences.Add(sequence);
                Interlocked.Increment(ref _acknowledged);
                LastAcknowledged = new AcknowledgedPut(key, response.Header.Revision, member.Id);
            }
            catch (Exception e) when (IsCausedByLeaderChange(e))
            {
                Interlocked.Increment(ref _unknownOutcome);
                await Task.Delay(s_backoffAfterFailure, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                if (Interlocked.Increment(ref _unexpectedErrors) == 1)
                {
                    Volatile.Write(ref _firstUnexpectedError, $"{e.GetType().Name}: {e.Message}");
                    console.Problem($"writer {writer} on {member}: unexpected {e.GetType().Name}: {e.Message}");
                }

                await Task.Delay(s_backoffAfterFailure, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The errors a client of a replicated store expects while a leader is replaced or its member
    /// stops; it retries them (here with a new key, since the failed put may still commit).
    /// </summary>
    public static bool IsCausedByLeaderChange(Exception e) => e is NoLeaderException
        or ProposalDroppedException
        or NodeStoppedException
        or ObjectDisposedException
        or TimeoutException
        or OperationCanceledException;

    /// <summary>One writer's own state; touched only by that writer's task until the writers stop.</summary>
    private sealed class WriterState
    {
        public int NextSequence { get; set; }

        public List<int> AcknowledgedSequences { get; } = [];

        public List<double> LatenciesMs { get; } = [];
    }
}

/// <summary>A put the cluster acknowledged: its key, the revision it created, and the member that answered.</summary>
internal sealed record AcknowledgedPut(string Key, long Revision, ulong MemberId);
