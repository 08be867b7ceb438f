using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// A snapshot marker record: the snapshot <paramref name="Metadata"/> the log now starts from,
/// the entry just before the first one kept (<paramref name="CompactIndex"/>, with its term, so
/// replay needs no entry that was released), and the log's last index when the marker was written
/// (<paramref name="LastIndex"/>: the entries kept, <c>(CompactIndex, LastIndex]</c>, were all
/// written before the marker, so replay can tell whether it still holds them all). For
/// <see cref="SnapshotMarkerKind.Installed"/> all three are the snapshot's own index (and term).
/// </summary>
/// <remarks>Invariant: <c>CompactIndex &lt;= Metadata.Index &lt;= LastIndex</c>.</remarks>
internal sealed record SnapshotMarker(SnapshotMarkerKind Kind, SnapshotMetadata Metadata, ulong CompactIndex, ulong CompactTerm, ulong LastIndex);
