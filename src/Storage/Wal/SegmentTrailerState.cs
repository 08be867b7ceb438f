namespace EmbeddedRaft.Storage.Wal;

/// <summary>What the last 16 bytes of a segment say.</summary>
internal enum SegmentTrailerState
{
    /// <summary>All zeros: no successor was recorded (the segment is the last, or the crash window of a cut).</summary>
    Absent,

    /// <summary>A valid trailer: the next segment durably existed when it was written.</summary>
    NamesNext,

    /// <summary>Non-zero but failing its check: damage (a torn write leaves it whole or zero).</summary>
    Damaged,
}
