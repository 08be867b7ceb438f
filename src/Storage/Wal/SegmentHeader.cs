namespace EmbeddedRaft.Storage.Wal;

/// <summary>The decoded payload of a segment's header record.</summary>
internal readonly record struct SegmentHeader(ulong Magic, uint Version, long Sequence, ulong FirstIndex, uint PreviousCrc, uint Flags)
{
    /// <summary>The file was a released segment's, reused without zeroing: its frames are tagged and stale bytes follow its tail.</summary>
    public bool IsRecycled => (Flags & WalFormat.SegmentFlagRecycled) != 0;

    /// <summary>What the segment's frames are tagged with.</summary>
    public FrameTag Tag => FrameTag.ForSegment(Sequence, IsRecycled);
}
