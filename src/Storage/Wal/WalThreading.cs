namespace EmbeddedRaft.Storage.Wal;

/// <summary>Which threads do a <see cref="WriteAheadLog"/>'s writes and flushes.</summary>
public enum WalThreading
{
    /// <summary>
    /// A writer thread and a syncer thread share group commit: the next group is written while the
    /// previous one flushes, and a lone synced append writes and flushes on its caller's thread.
    /// The production mode.
    /// </summary>
    BackgroundThreads,

    /// <summary>
    /// No thread of the log's own: every write and flush runs on the thread that calls
    /// <see cref="WriteAheadLog.AppendAsync"/> (synced), <see cref="WriteAheadLog.SyncAsync"/>,
    /// or disposes the log, and completes before that call returns. Unsynced appends wait in
    /// memory until then (or until back-pressure drains them on the appender's thread). The same
    /// durability contract and on-disk format; no overlap of writes and flushes. For a deterministic
    /// simulator or a single-threaded host loop: one caller's sequence of calls gives one sequence
    /// of file-system calls. Concurrent callers are safe; they take turns.
    /// </summary>
    CallerThread,
}
