namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// What a snapshot covers: the Raft index and term of the last entry it includes, and the cluster
/// membership at that point as an opaque blob (the consensus layer's encoding). Immutable.
/// </summary>
public sealed class SnapshotMetadata
{
    /// <summary>Creates the metadata; <paramref name="membership"/> is copied.</summary>
    public SnapshotMetadata(ulong index, ulong term, ReadOnlySpan<byte> membership)
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
