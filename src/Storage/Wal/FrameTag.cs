namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// What a recycled segment's frames are tagged with: the low 32 bits of the segment's sequence,
/// mixed into each frame's length-word check and crc (docs/formats.md, "Recycled segments"). A
/// recycled file still holds its previous life's frames past the tail; they were tagged with an
/// older sequence (or not at all), so they fail this life's checks and can neither extend the log
/// nor pose as proof that damaged bytes had been flushed. Segments written over zeros (and every
/// segment of format version 2) are untagged: <see cref="None"/>.
/// </summary>
internal readonly record struct FrameTag(bool IsTagged, uint Value)
{
    /// <summary>No tag: the frame encoding of a segment written over zeros.</summary>
    public static FrameTag None => default;

    /// <summary>The tag of the segment with <paramref name="sequence"/>: none unless it is recycled. Sequences only grow, so a file's lives never share one.</summary>
    public static FrameTag ForSegment(long sequence, bool recycled) => recycled ? new(true, unchecked((uint)sequence)) : None;
}
