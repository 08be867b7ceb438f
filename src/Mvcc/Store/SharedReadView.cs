using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// One B+tree read transaction, its key bucket and the pending batch, shared by every
/// <see cref="MvccStore.Range"/> that reads while that batch is current (etcd 3.4's
/// <c>ConcurrentReadTx</c>: one bolt read transaction shared by the reads between two commits).
/// A read then costs an interlocked increment and decrement instead of a transaction, a tree, a
/// bucket and a value source of its own, and two turns of the B+tree's reader lock.
/// </summary>
/// <remarks>
/// <para>Why it is valid: the writer commits a batch's revisions to the B+tree before it swaps the
/// batch out (<c>StoreWriter.CommitBatch</c>), so a snapshot begun while batch P is current holds
/// every revision that is not in P; and P keeps every revision written until the swap. A view is
/// therefore valid for exactly as long as its batch is current: <see cref="Retire"/> runs under the
/// index write lock before every swap, and before the B+tree is closed or replaced.</para>
/// <para>Reference counting: one reference for being <see cref="StoreState.ReadView"/>, plus one per
/// reader between <see cref="Acquire"/> and <see cref="Release"/>; the last release ends the
/// transaction and releases the batch. A reader acquires under the index read lock and retirement
/// happens under the write lock, so a reader never finds an installed view whose count reached zero.
/// Invariant: the count never goes below zero; an installed view's count is at least one.</para>
/// <para>Thread-safety: readers share <see cref="Values"/>, which only looks keys up in a read-only
/// bucket (<see cref="Bucket.TryGet"/> on a read transaction may be called from several threads at
/// once) and in the batch (any number of readers).</para>
/// </remarks>
internal sealed class SharedReadView
{
    private readonly Transaction _snapshot;
    private readonly PendingBatch _pending;
    private int _references;

    private SharedReadView(PendingBatch pending, Transaction snapshot, string path, int references)
    {
        _pending = pending;
        _snapshot = snapshot;
        _references = references;
        Values = new ValueSource(pending, snapshot.OpenBucket(MetaKeys.KeyBucket), path);
    }

    /// <summary>Where the view's readers find the value of a revision.</summary>
    public ValueSource Values { get; }

    /// <summary>
    /// The view of the current batch, acquired for one read: the installed one, or a new one
    /// installed now. Call with the index read (or write) lock held; <see cref="Release"/> when the
    /// read has copied its last value.
    /// </summary>
    public static SharedReadView Acquire(StoreState state)
    {
        if (Volatile.Read(ref state.ReadView) is { } current)
        {
            // Installed, so its count is at least one (the installed reference) until the write lock retires it.
            Interlocked.Increment(ref current._references);
            return current;
        }

        // Begun under the index lock with the batch current now: the snapshot holds every revision
        // committed before this batch became current (the class remarks).
        var pending = state.Pending;
        pending.Hold();
        Transaction? snapshot = null;
        try
        {
            snapshot = state.Database.BeginRead();
            var created = new SharedReadView(pending, snapshot, state.Path, references: 2);
            if (Interlocked.CompareExchange(ref state.ReadView, created, null) is null)
            {
                return created;
            }

            // Another reader installed one first: this one serves this read alone (not yet shared).
            created._references = 1;
            return created;
        }
        catch
        {
            snapshot?.Dispose();
            pending.Release();
            throw;
        }
    }

    /// <summary>
    /// Uninstalls the current view, if any, and drops its installed reference (writer, or a thread
    /// replacing the B+tree; with the index write lock held): the next read begins a new one.
    /// </summary>
    public static void Retire(StoreState state)
    {
        if (!state.IndexLock.IsWriteLockHeld)
        {
            throw new InvariantViolationException($"MVCC store {state.Path}: a shared read view retired without the index write lock.");
        }

        if (Interlocked.Exchange(ref state.ReadView, null) is { } retired)
        {
            retired.Release();
        }
    }

    /// <summary>Ends one reference; the last ends the B+tree transaction and releases the batch (any thread).</summary>
    public void Release()
    {
        int left = Interlocked.Decrement(ref _references);
        if (left > 0)
        {
            return;
        }

        if (left < 0)
        {
            throw new InvariantViolationException("MVCC store: a shared read view released more often than acquired.");
        }

        try
        {
            _snapshot.Dispose();
        }
        finally
        {
            // Its values were copied by every reader: the batch's buffers may be reused from here.
            _pending.Release();
        }
    }
}
