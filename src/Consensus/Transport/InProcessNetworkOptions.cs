using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// Settings of an <see cref="InProcessNetwork"/>. Each property checks its own value when set and
/// throws <see cref="ArgumentOutOfRangeException"/> (or <see cref="ArgumentNullException"/>) whose
/// <see cref="ArgumentException.ParamName"/> is the property's name.
/// </summary>
/// <remarks>An immutable record; vary it with <c>InProcessNetworkOptions.Default with { Seed = 7 }</c>. Thread-safe to share.</remarks>
public sealed record InProcessNetworkOptions
{
    /// <summary>The default <see cref="SnapshotChunkSizeBytes"/>: 64 KiB.</summary>
    public const int DefaultSnapshotChunkSizeBytes = 64 * 1024;

    /// <summary>The smallest <see cref="SnapshotChunkSizeBytes"/> accepted: 1 byte.</summary>
    public const int MinSnapshotChunkSizeBytes = 1;

    /// <summary>The largest <see cref="SnapshotChunkSizeBytes"/> accepted: 16 MiB.</summary>
    public const int MaxSnapshotChunkSizeBytes = 16 * 1024 * 1024;

    /// <summary>Creates options with every default.</summary>
    public InProcessNetworkOptions()
    {
    }

    /// <summary>Every default: system time, seed 0, 64 KiB snapshot chunks, perfect links, no logging.</summary>
    public static InProcessNetworkOptions Default { get; } = new();

    /// <summary>
    /// The clock that times delayed and reordered messages. A manual clock (FakeTimeProvider) fires
    /// its timers on the thread that advances it, so a simulation controls every delivery. Default
    /// <see cref="TimeProvider.System"/>; null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "TimeProvider").</exception>
    public TimeProvider TimeProvider
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(TimeProvider));
    } = TimeProvider.System;

    /// <summary>
    /// Seed of the one random source that decides every fault (drop, duplicate, jitter, reorder):
    /// the same seed and the same order of sends give the same faults. Any value; default 0.
    /// </summary>
    public int Seed { get; init; }

    /// <summary>
    /// Largest piece a snapshot is streamed in; the pipe between sender and receiver holds at most
    /// two pieces, so neither side ever holds the whole snapshot. From
    /// <see cref="MinSnapshotChunkSizeBytes"/> to <see cref="MaxSnapshotChunkSizeBytes"/>.
    /// Default <see cref="DefaultSnapshotChunkSizeBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "SnapshotChunkSizeBytes").</exception>
    public int SnapshotChunkSizeBytes
    {
        get;
        init => field = OptionChecks.InRange(value, MinSnapshotChunkSizeBytes, MaxSnapshotChunkSizeBytes, nameof(SnapshotChunkSizeBytes));
    } = DefaultSnapshotChunkSizeBytes;

    /// <summary>
    /// Faults of every link that has none of its own (see <see cref="InProcessNetwork.SetLinkFaults"/>).
    /// Default <see cref="LinkFaults.None"/>; null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "DefaultLinkFaults").</exception>
    public LinkFaults DefaultLinkFaults
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(DefaultLinkFaults));
    } = LinkFaults.None;

    /// <summary>
    /// Where failures are reported: a receiver that threw (logged at <see cref="LogLevel.Error"/>)
    /// and failed snapshot transfers (<see cref="LogLevel.Warning"/>). Default: nowhere
    /// (<see cref="NullLogger.Instance"/>); null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Logger").</exception>
    public ILogger Logger
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Logger));
    } = NullLogger.Instance;
}
