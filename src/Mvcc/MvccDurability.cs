namespace EmbeddedRaft.Mvcc;

/// <summary>When a write to an <see cref="MvccStore"/> is durable.</summary>
public enum MvccDurability
{
    /// <summary>
    /// Standalone use (the default): a write returns once it is on disk. Writes that arrive while
    /// a commit is being written are committed together by the next one (group commit), up to
    /// <see cref="MvccStoreOptions.BatchLimit"/> writes per B+tree commit.
    /// </summary>
    Synced,

    /// <summary>
    /// Under Raft, where the log is the durability: a write returns once applied (visible to
    /// reads). Writes are committed to the B+tree without a flush in batches of
    /// <see cref="MvccStoreOptions.BatchLimit"/> writes or every <see cref="MvccStoreOptions.BatchInterval"/>,
    /// whichever comes first, each with the consistent index of its last write; a crash loses the
    /// writes after the last flushed commit, and the caller replays its log from
    /// <see cref="MvccStore.ConsistentIndex"/>. <see cref="MvccStore.SyncAsync"/> (and disposing) makes everything durable.
    /// </summary>
    NoSync,
}
