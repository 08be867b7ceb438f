namespace EmbeddedRaft.Consensus.Messages;

/// <summary>What a snapshot covers: the log up to and including <see cref="Index"/>, and the configuration at that point.</summary>
/// <param name="Index">The last log index the snapshot includes.</param>
/// <param name="Term">The term of the entry at <paramref name="Index"/>.</param>
/// <param name="ConfState">The configuration as of <paramref name="Index"/>.</param>
public sealed record SnapshotMetadata(ulong Index, ulong Term, ConfState ConfState)
{
    /// <summary>Metadata of "no snapshot".</summary>
    public static SnapshotMetadata Empty { get; } = new(0, 0, ConfState.Empty);
}

/// <summary>A point-in-time image of the application state plus its <see cref="SnapshotMetadata"/>.</summary>
/// <param name="Metadata">Which log prefix and configuration the image reflects.</param>
/// <param name="Data">The application's opaque image.</param>
public sealed record Snapshot(SnapshotMetadata Metadata, ReadOnlyMemory<byte> Data)
{
    /// <summary>The empty snapshot (index 0).</summary>
    public static Snapshot Empty { get; } = new(SnapshotMetadata.Empty, ReadOnlyMemory<byte>.Empty);

    /// <summary>True when this is no snapshot at all (index 0).</summary>
    public bool IsEmpty => Metadata.Index == 0;
}
