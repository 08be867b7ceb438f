using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>
/// The stable (persisted) part of the Raft log as the core reads it: the host writes to it
/// from each <see cref="Ready"/> and the core reads from it. Entries are addressed by index;
/// the storage keeps a contiguous range <c>[FirstIndex, LastIndex]</c> plus the term of the
/// entry just before it (the last entry folded into the snapshot).
/// </summary>
/// <remarks>
/// The core calls this interface from the thread driving the <see cref="RawNode"/>. Memory
/// returned by <see cref="Entries"/> must never be mutated afterwards: the core may hand it out
/// in messages and Readies.
/// </remarks>
public interface IRaftStorage
{
    /// <summary>
    /// The persisted hard state, and the configuration <b>as of the application's applied index</b>.
    /// </summary>
    /// <remarks>
    /// <para>This is the one configuration contract of the library. The configuration returned is
    /// the one the host persisted with its applied index: what <see cref="RawNode.ApplyConfChange"/>
    /// returned for the last configuration change applied, saved atomically with that entry's
    /// index; or, when nothing was applied since the newest snapshot (or bootstrap), that
    /// snapshot's <see cref="SnapshotMetadata.ConfState"/>. It is never a configuration of a
    /// later entry (one committed but not applied) nor an older one.</para>
    /// <para>On restart the host passes that applied index as <see cref="RaftOptions.AppliedIndex"/>
    /// whenever it differs from the snapshot index; the node then hands out only the entries
    /// after it, and applying their configuration changes to this configuration gives exactly
    /// what a fresh replay of the whole log would. Left null, the node assumes the application
    /// holds the snapshot's state, and the <see cref="RawNode"/> constructor refuses a
    /// configuration that differs from the snapshot's (<see cref="ArgumentException"/>).</para>
    /// </remarks>
    (HardState HardState, ConfState ConfState) InitialState();

    /// <summary>
    /// Entries in <c>[low, high)</c>, stopping early once their total <see cref="Entry.EncodedSizeBytes"/>
    /// would exceed <paramref name="maxSizeBytes"/> (but always at least one entry if any are asked for).
    /// </summary>
    /// <exception cref="LogCompactedException"><paramref name="low"/> is below <see cref="FirstIndex"/>.</exception>
    /// <exception cref="EntriesUnavailableException"><paramref name="high"/> is beyond <c>LastIndex + 1</c>.</exception>
    ReadOnlyMemory<Entry> Entries(ulong low, ulong high, ulong maxSizeBytes);

    /// <summary>The term of the entry at <paramref name="index"/>, for any index in <c>[FirstIndex - 1, LastIndex]</c>.</summary>
    /// <exception cref="LogCompactedException"><paramref name="index"/> is below <c>FirstIndex - 1</c>.</exception>
    /// <exception cref="EntriesUnavailableException"><paramref name="index"/> is beyond <see cref="LastIndex"/>.</exception>
    ulong Term(ulong index);

    /// <summary>The index of the last entry (the snapshot index if the log is empty).</summary>
    ulong LastIndex();

    /// <summary>
    /// The index of the first entry still available: the snapshot index + 1, or lower when the
    /// storage retains entries below its snapshot for slow followers (a <see cref="RawNode"/>
    /// created without <see cref="RaftOptions.AppliedIndex"/> still starts applying after the
    /// snapshot index, never handing those entries out again).
    /// </summary>
    ulong FirstIndex();

    /// <summary>The most recent snapshot, used to catch up followers that need compacted entries: it must cover every compacted entry (index at least <c>FirstIndex - 1</c>).</summary>
    /// <exception cref="SnapshotTemporarilyUnavailableException">A snapshot is being produced; the core retries later.</exception>
    SnapshotMetadata Snapshot();
}
