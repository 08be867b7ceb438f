using System.Diagnostics.Metrics;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// Counts the read-index rounds of the in-process members, and the linearizable reads they carried,
/// from RaftNode's <c>embeddedraft.consensus.read_index.readers</c> histogram over a measured window:
/// how well concurrent reads share rounds (a round costs a heartbeat exchange with every voter).
/// </summary>
internal sealed class ReadRoundCounter : IDisposable
{
    private const string InstrumentName = "embeddedraft.consensus.read_index.readers";

    private readonly MeterListener _listener = new();
    private long _rounds;
    private long _reads;
    private (long Rounds, long Reads)? _stopped;

    private ReadRoundCounter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name == InstrumentName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, readers, _, _) =>
        {
            Interlocked.Increment(ref _rounds);
            Interlocked.Add(ref _reads, readers);
        });
        _listener.Start();
    }

    public static ReadRoundCounter Start() => new();

    /// <summary>Ends the window: later rounds are not counted.</summary>
    public void Stop() => _stopped ??= (Interlocked.Read(ref _rounds), Interlocked.Read(ref _reads));

    /// <summary>A one-line summary of the window, or null when no round ran (no linearizable read, or not our store).</summary>
    public string? Summary()
    {
        Stop();
        var (rounds, reads) = _stopped!.Value;
        return rounds == 0
            ? null
            : FormattableString.Invariant($"read-index rounds in the window: {rounds:N0}, {(double)reads / rounds:F1} linearizable reads per round");
    }

    public void Dispose() => _listener.Dispose();
}
