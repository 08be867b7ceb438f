namespace EmbeddedRaft.Consensus.Log;

/// <summary>What a <see cref="SnapshotMarker"/> did to the log. On disk: never renumber.</summary>
internal enum SnapshotMarkerKind : byte
{
    /// <summary>A leader's snapshot was installed (<see cref="DurableRaftLog.ApplySnapshotAsync"/>): every entry was discarded; the log continues after the snapshot index.</summary>
    Installed = 1,

    /// <summary>The host's own snapshot (<see cref="DurableRaftLog.CompactAsync"/>): entries up to the compact index were discarded, later ones kept.</summary>
    Compacted = 2,
}
