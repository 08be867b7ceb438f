using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// The state <see cref="WalRecovery.Recover"/> hands to a new <see cref="WriteAheadLog"/>. Every
/// record before <c>TailOffset</c> is durable and proven so by a frame's synced word (a sync mark).
/// <c>TailTag</c> is what the last segment's frames are tagged with (none unless it is recycled).
/// </summary>
internal sealed record RecoveredLog(List<SegmentInfo> Segments, IStorageFile LastSegment, long TailOffset, uint TailCrc, FrameTag TailTag, ulong LastIndex, WalTailRepair? Repair);
