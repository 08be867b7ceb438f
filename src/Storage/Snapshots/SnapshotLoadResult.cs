namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// What <see cref="Snapshotter.LoadNewestAsync"/> found: the newest valid snapshot (or none) and every
/// newer snapshot it set aside because it failed its checks. A non-empty
/// <see cref="Quarantined"/> means the caller got an older snapshot than the newest saved (or none
/// at all) and an operator should look at the <c>.broken</c> files.
/// </summary>
/// <param name="Snapshot">The newest snapshot that checked out end to end, or null when none did. The caller disposes it.</param>
/// <param name="Quarantined">The snapshots renamed aside during this load, newest first; empty when the newest one was valid.</param>
public sealed record SnapshotLoadResult(LoadedSnapshot? Snapshot, IReadOnlyList<QuarantinedSnapshot> Quarantined);
