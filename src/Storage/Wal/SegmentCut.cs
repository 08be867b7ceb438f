namespace EmbeddedRaft.Storage.Wal;

/// <summary>A segment the writer must create: its name's parts and its complete header frame.</summary>
internal sealed record SegmentCut(long Sequence, ulong FirstIndex, byte[] HeaderFrame);
