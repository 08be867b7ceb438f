using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// A snapshot marker record: the snapshot <paramref name="Metadata"/> the log now starts from,
/// and the entry just before the first one kept (<paramref name="CompactIndex"/>, with its term,
/// so replay needs no entry that was released). For <see cref="SnapshotMarkerKind.Installed"/>
/// the compact index and term are the snapshot's own.
/// </summary>
/// <remarks>Invariant: <c>CompactIndex &lt;= Metadata.Index</c>.</remarks>
internal sealed record SnapshotMarker(SnapshotMarkerKind Kind, SnapshotMetadata Metadata, ulong CompactIndex, ulong CompactTerm);
