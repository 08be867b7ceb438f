using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>Settings of a <see cref="Snapshotter"/>, validated when constructed. Immutable and safe to share.</summary>
public sealed class SnapshotOptions
{
    /// <summary>The options used when none are given.</summary>
    public static SnapshotOptions Default { get; } = new();

    /// <summary>Creates validated options.</summary>
    /// <param name="retainCount">How many of the newest snapshots <see cref="Snapshotter.SaveAsync(SnapshotFileMetadata, Func{Stream, CancellationToken, ValueTask}, CancellationToken)"/> keeps; older ones are deleted after a save. At least 1.</param>
    /// <param name="chunkSizeBytes">Data is stored in checksummed chunks of at most this size; it bounds the memory a save or load holds. 4 KiB to 16 MiB.</param>
    /// <param name="maxMembershipSizeBytes">The largest membership blob accepted (a header naming a larger one is corruption). At least 0.</param>
    /// <param name="logger">Where fallbacks are reported: each snapshot quarantined at load is logged at <see cref="LogLevel.Warning"/>. Null: nowhere (<see cref="NullLogger.Instance"/>).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public SnapshotOptions(int retainCount = 5, int chunkSizeBytes = 256 * 1024, int maxMembershipSizeBytes = 16 * 1024 * 1024, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(retainCount, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSizeBytes, 4096);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(chunkSizeBytes, 16 * 1024 * 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(maxMembershipSizeBytes);
        RetainCount = retainCount;
        ChunkSizeBytes = chunkSizeBytes;
        MaxMembershipSizeBytes = maxMembershipSizeBytes;
        Logger = logger ?? NullLogger.Instance;
    }

    /// <summary>How many of the newest snapshots are kept.</summary>
    public int RetainCount { get; }

    /// <summary>The largest data chunk.</summary>
    public int ChunkSizeBytes { get; }

    /// <summary>The largest membership blob.</summary>
    public int MaxMembershipSizeBytes { get; }

    /// <summary>Where quarantined snapshots are reported (a warning each).</summary>
    public ILogger Logger { get; }
}
