namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// A segment the writer must create: its name's parts, its complete header frame, and whether it
/// reuses the spare its cut reserved (then its header is flagged and its frames tagged).
/// </summary>
internal sealed record SegmentCut(long Sequence, ulong FirstIndex, byte[] HeaderFrame, bool Recycled);
