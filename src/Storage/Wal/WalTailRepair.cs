namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// What <see cref="WriteAheadLog.Open"/> cut from the end of the last segment because a crash left
/// it torn: the bytes from <see cref="Offset"/> up to the last non-zero byte (in a recycled
/// segment, whose unused rest holds a previous life's bytes: up to the end of the last frame of
/// this life found there), which were copied to <see cref="SideFilePath"/> (never deleted by the
/// log) before being zeroed in the segment.
/// Reported by <see cref="WriteAheadLog.TailRepair"/> and as a warning through
/// <see cref="WalOptions.Logger"/>.
/// </summary>
/// <remarks>
/// What a repair may cut is bounded (docs/formats.md, "The bound"): never a byte before
/// <see cref="ProvenDurableOffset"/>, the largest offset any frame of the segment proved durable;
/// damage there is refused as corruption instead.
/// </remarks>
/// <param name="SegmentPath">The last segment, where the tail was cut.</param>
/// <param name="Offset">Where the log now ends: the first frame that was not whole.</param>
/// <param name="LengthBytes">How many bytes were cut (and copied to the side file).</param>
/// <param name="SideFilePath">The file holding the cut bytes.</param>
/// <param name="Reason">Why the frame at <paramref name="Offset"/> was not whole.</param>
/// <param name="ProvenDurableOffset">The largest offset of the segment that a frame's synced word (or a sync mark) proved durable; at most <paramref name="Offset"/>.</param>
public sealed record WalTailRepair(string SegmentPath, long Offset, long LengthBytes, string SideFilePath, string Reason, long ProvenDurableOffset);
