namespace EmbeddedRaft.Storage.Wal;

/// <summary>One segment file of the log, as its name says.</summary>
internal sealed record SegmentInfo(long Sequence, ulong FirstIndex, string Path);
