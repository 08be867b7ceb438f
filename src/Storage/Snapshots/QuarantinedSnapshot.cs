namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>A snapshot that failed its checks at load and was renamed aside (never deleted).</summary>
/// <param name="Path">Where the snapshot was.</param>
/// <param name="BrokenPath">Where it is now (<c>&lt;Path&gt;.broken</c>, or <c>.broken.N</c> when that exists).</param>
/// <param name="Offset">The offset of the first damage found, as <see cref="CorruptionException.Offset"/>.</param>
/// <param name="Reason">What check failed, as <see cref="CorruptionException.Reason"/>.</param>
public sealed record QuarantinedSnapshot(string Path, string BrokenPath, long Offset, string Reason);
