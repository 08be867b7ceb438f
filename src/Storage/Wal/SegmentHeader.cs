namespace EmbeddedRaft.Storage.Wal;

/// <summary>The decoded payload of a segment's header record.</summary>
internal readonly record struct SegmentHeader(ulong Magic, uint Version, long Sequence, ulong FirstIndex, uint PreviousCrc);
