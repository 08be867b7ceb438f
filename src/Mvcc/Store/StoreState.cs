using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// What the store's readers and its one writer share: the B+tree, the key index and the lock that
/// guards it, the published revision and compact revision, the batch not yet committed, and the
/// first failure.
/// </summary>
/// <remarks>
/// The lock rule: the index, <see cref="Revision"/>, <see cref="CompactRevision"/> and
/// <see cref="Pending"/> change only on the writer thread, and only under the write lock of
/// <see cref="IndexLock"/>, which is never held across IO; readers take the read lock to read them
/// and to begin their B+tree snapshot, so what they see is one consistent point of history. The
/// writer reads the index without the lock (no one else changes it).
/// </remarks>
internal sealed class StoreState(string path, BTreeDatabase database, MvccStoreOptions options)
{
    private Exception? _failure;

    public string Path { get; } = path;

    /// <summary>The B+tree; replaced only by <see cref="Adopt"/> (a snapshot restore), under the write lock.</summary>
    public BTreeDatabase Database { get; private set; } = database;

    public MvccStoreOptions Options { get; } = options;

    public ReaderWriterLockSlim IndexLock { get; } = new(LockRecursionPolicy.NoRecursion);

    /// <summary>The key index; replaced only by <see cref="Adopt"/> (a snapshot restore), under the write lock.</summary>
    public KeyIndex Index { get; private set; } = new();

    /// <summary>The leases and which keys they hold; changed by the writer (and keep-alives), read by anyone (its own lock).</summary>
    public Leases.Lessor Lessor { get; } = new(options.Leases, deterministic: options.Scheduler is not null);

    /// <summary>The current (published) revision. Invariant: never decreases.</summary>
    public long Revision;

    /// <summary>The compact revision, -1 before the first compaction (as etcd). Invariant: never decreases; at most <see cref="Revision"/>.</summary>
    public long CompactRevision = -1;

    /// <summary>The last consistent index applied (written to the B+tree with its batch).</summary>
    public ulong ConsistentIndex;

    /// <summary>The revisions written since the last B+tree commit; replaced by the writer after each commit.</summary>
    public PendingBatch Pending = new();

    /// <summary>
    /// The B+tree read transaction the ranges of <see cref="Pending"/>'s time share, or null until a
    /// range begins one (see <see cref="SharedReadView"/>); installed by readers under the read lock,
    /// retired under the write lock before <see cref="Pending"/> is swapped or the B+tree replaced.
    /// </summary>
    public SharedReadView? ReadView;

    /// <summary>The first write or flush failure; from then on every operation throws <see cref="StorageFaultedException"/>.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    public void SetFailure(Exception failure)
    {
        Interlocked.CompareExchange(ref _failure, failure, null);

        // No revocation will come: keep-alives waiting for one end (with the fault).
        Lessor.Close();
    }

    public void ThrowIfFailed()
    {
        if (Failure is { } failure)
        {
            throw new StorageFaultedException(Path, failure);
        }
    }

    /// <summary>
    /// Takes over everything <paramref name="loaded"/> rebuilt from a restored file — its key index,
    /// revision, compact revision, consistent index and leases — with <paramref name="database"/>,
    /// that file reopened at this store's path (writer thread, with the write
    /// lock of <see cref="IndexLock"/> held, after the batch was committed so nothing is pending).
    /// The revision may move either way: the store now holds another history.
    /// </summary>
    public void Adopt(StoreState loaded, BTreeDatabase database)
    {
        if (!IndexLock.IsWriteLockHeld)
        {
            throw new InvariantViolationException($"MVCC store {Path}: a restored state adopted without the index write lock.");
        }

        if (Pending.Count != 0)
        {
            throw new InvariantViolationException($"MVCC store {Path}: a restored state adopted with {Pending.Count} uncommitted revisions pending.");
        }

        Database = database;
        Index = loaded.Index;
        Volatile.Write(ref Revision, loaded.Revision);
        Volatile.Write(ref CompactRevision, loaded.CompactRevision);
        Volatile.Write(ref ConsistentIndex, loaded.ConsistentIndex);
        Lessor.ReplaceWith(loaded.Lessor);
    }

    /// <summary>Publishes a new revision (writer thread).</summary>
    public void Publish(long revision)
    {
        IndexLock.EnterWriteLock();
        try
        {
            PublishHoldingIndexLock(revision);
        }
        finally
        {
            IndexLock.ExitWriteLock();
        }
    }

    /// <summary>Publishes a new revision (writer thread) while it holds the index write lock, as the last step of the revision's index changes.</summary>
    /// <exception cref="InvariantViolationException">The revision is not above the current one, or the lock is not held.</exception>
    public void PublishHoldingIndexLock(long revision)
    {
        if (revision <= Revision || !IndexLock.IsWriteLockHeld)
        {
            throw new InvariantViolationException($"MVCC store: revision {revision} published after {Revision} (index write lock held: {IndexLock.IsWriteLockHeld}).");
        }

        Volatile.Write(ref Revision, revision);
    }
}
