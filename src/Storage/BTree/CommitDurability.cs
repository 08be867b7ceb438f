namespace EmbeddedRaft.Storage.BTree;

/// <summary>How <see cref="Transaction.Commit"/> makes a write transaction durable.</summary>
public enum CommitDurability
{
    /// <summary>
    /// The commit is durable when it returns: its pages are flushed to disk, then the meta page
    /// that references them is written and flushed.
    /// </summary>
    Synced,

    /// <summary>
    /// The commit is visible to new transactions when it returns but not durable: a crash rolls the
    /// database back to the last synced commit. For callers that keep their own log (the MVCC store
    /// under Raft). The next synced commit, <see cref="BTreeDatabase.Sync"/> or disposing the
    /// database makes it durable. Pages freed by unsynced commits are not reused until then.
    /// </summary>
    NoSync,
}
