namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// What <see cref="Snapshotter.LoadNewest"/> found: the newest valid snapshot (or none) and every
/// newer snapshot it set aside because it failed its checks. A non-empty
/// <see cref="Quarantined"/> means the caller got an older snapshot than the newest saved (or none
/// at all) and an operator should look at the <c>.broken</c> files.
/// </summary>
/// <param name="Snapshot">The newest snapshot that checked out end to end, or null when none did. The caller disposes it.</param>
/// <param name="Quarantined">The snapshots renamed aside during this load, newest first; empty when the newest one was valid.</param>
public sealed record SnapshotLoadResult(LoadedSnapshot? Snapshot, IReadOnlyList<QuarantinedSnapshot> Quarantined);

/// <summary>A snapshot that failed its checks at load and was renamed aside (never deleted).</summary>
/// <param name="Path">Where the snapshot was.</param>
/// <param name="BrokenPath">Where it is now (<c>&lt;Path&gt;.broken</c>, or <c>.broken.N</c> when that exists).</param>
/// <param name="Offset">The offset of the first damage found, as <see cref="CorruptionException.Offset"/>.</param>
/// <param name="Reason">What check failed, as <see cref="CorruptionException.Reason"/>.</param>
public sealed record QuarantinedSnapshot(string Path, string BrokenPath, long Offset, string Reason);
