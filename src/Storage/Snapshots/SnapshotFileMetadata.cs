namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// What a snapshot file's header holds: the Raft index and term of the last entry the snapshot
/// includes, and the cluster membership at that point as an opaque blob (the consensus layer's
/// encoding). Named for the file so that it does not collide with the consensus layer's own
/// <c>EmbeddedRaft.Consensus.Messages.SnapshotMetadata</c>, which a host imports beside it.
/// Immutable; safe to share between threads.
/// </summary>
public sealed class SnapshotFileMetadata
{
    /// <summary>Creates the metadata; <paramref name="membership"/> is copied.</summary>
    public SnapshotFileMetadata(ulong index, ulong term, ReadOnlySpan<byte> membership)
    {
        Index = index;
        Term = term;
        Membership = membership.ToArray();
    }

    /// <summary>The index of the last log entry the snapshot includes.</summary>
    public ulong Index { get; }

    /// <summary>The term of that entry.</summary>
    public ulong Term { get; }

    /// <summary>The membership blob, as given to the constructor.</summary>
    public ReadOnlyMemory<byte> Membership { get; }

    /// <inheritdoc />
    public override string ToString() => $"snapshot at index {Index}, term {Term} ({Membership.Length}-byte membership)";
}
