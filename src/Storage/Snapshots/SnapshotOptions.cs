using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// Settings of a <see cref="Snapshotter"/>. Each property checks its own range when set and throws
/// <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/> is the
/// property's name (no rule relates several of them).
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds from
/// Microsoft.Extensions.Configuration; vary <see cref="Default"/> with <c>with</c>
/// (<c>SnapshotOptions.Default with { RetainCount = 2 }</c>), whose setters validate again.
/// Safe to share between threads and snapshotters.
/// </remarks>
public sealed record SnapshotOptions
{
    /// <summary>The default <see cref="RetainCount"/>.</summary>
    public const int DefaultRetainCount = 5;

    /// <summary>The default <see cref="ChunkSizeBytes"/>, 256 KiB.</summary>
    public const int DefaultChunkSizeBytes = 256 * 1024;

    /// <summary>The smallest <see cref="ChunkSizeBytes"/>, 4 KiB.</summary>
    public const int MinChunkSizeBytes = 4096;

    /// <summary>The largest <see cref="ChunkSizeBytes"/>, 16 MiB.</summary>
    public const int MaxChunkSizeBytes = 16 * 1024 * 1024;

    /// <summary>The default <see cref="MaxMembershipSizeBytes"/>, 16 MiB.</summary>
    public const int DefaultMaxMembershipSizeBytes = 16 * 1024 * 1024;

    /// <summary>Creates options with every default.</summary>
    public SnapshotOptions()
    {
    }

    /// <summary>Every default.</summary>
    public static SnapshotOptions Default { get; } = new();

    /// <summary>How many of the newest snapshots a save keeps; older ones are deleted after it. At least 1; default 5.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value below 1.</exception>
    public int RetainCount
    {
        get;
        init => field = OptionChecks.AtLeast(value, 1, nameof(RetainCount));
    } = DefaultRetainCount;

    /// <summary>
    /// Data is stored in checksummed chunks of at most this size; it bounds the memory a save or
    /// load holds. From 4 KiB to 16 MiB; default 256 KiB. A snapshot is read with the chunk sizes
    /// it was written with, whatever this is when it is loaded.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value outside <see cref="MinChunkSizeBytes"/> to <see cref="MaxChunkSizeBytes"/>.</exception>
    public int ChunkSizeBytes
    {
        get;
        init => field = OptionChecks.InRange(value, MinChunkSizeBytes, MaxChunkSizeBytes, nameof(ChunkSizeBytes));
    } = DefaultChunkSizeBytes;

    /// <summary>
    /// The largest membership blob accepted: a save with a larger one is refused, and a file whose
    /// header names a larger one is treated as corrupt. At least 0; default 16 MiB.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a negative value.</exception>
    public int MaxMembershipSizeBytes
    {
        get;
        init => field = OptionChecks.AtLeast(value, 0, nameof(MaxMembershipSizeBytes));
    } = DefaultMaxMembershipSizeBytes;

    /// <summary>
    /// Where fallbacks are reported: each snapshot quarantined at load is logged at
    /// <see cref="LogLevel.Warning"/>. Default <see cref="NullLogger.Instance"/>; setting null means the same.
    /// </summary>
    public ILogger Logger
    {
        get;
        init => field = value ?? NullLogger.Instance;
    } = NullLogger.Instance;
}
