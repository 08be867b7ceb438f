using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc;

// Snapshot images (issue 17): what a replicated store's Raft snapshots are. Capture is a commit plus
// a read transaction (cheap, on the caller's thread); the image is streamed out later from that
// transaction. Restore replaces the whole store IN PLACE — same MvccStore object, same watches —
// by swapping its B+tree file atomically (docs/architecture.md, "Snapshot images").
public sealed partial class MvccStore
{
    /// <summary>Suffix of the restored file that waits beside <c>mvcc.db</c> for the swap.</summary>
    internal const string IncomingSuffix = ".incoming";

    /// <summary>
    /// Captures the store's state as of <see cref="ConsistentIndex"/>: commits what is applied
    /// (no-sync) and begins a read transaction on that commit, waiting on the calling thread for the
    /// writer to do so (one commit). Writes may go on meanwhile; the image does not move. Dispose it.
    /// </summary>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    internal MvccStoreImage CaptureImage()
    {
        var pending = Submit<object?>(new WriteOp(WriteOpKind.Checkpoint, null, 0), CancellationToken.None);
        if (ResumeOnScheduler)
        {
            // Deterministic mode: this thread is the scheduler's, so the writer's pump cannot run
            // while this waits; the writer's steps run here instead (the checkpoint completes in them).
            _writer.RunQueuedInline();
            if (!pending.IsCompleted)
            {
                throw new InvariantViolationException("MVCC store: the checkpoint for a snapshot image did not complete when the writer ran it inline.");
            }
        }

        var checkpoint = pending.AsTask().GetAwaiter().GetResult();
        OnImageOpened();
        return new MvccStoreImage((Checkpoint)checkpoint!, OnImageClosed, ResumeOnScheduler);
    }

    /// <summary>
    /// Replaces the whole store by the image read from <paramref name="image"/> (a stream of
    /// <see cref="MvccStoreImage.WriteToAsync"/>), in place: the image is restored into a new file
    /// beside the store's and loaded (on the calling thread, while the store serves reads and
    /// writes); then the writer swaps the files atomically and adopts the new state, reads wait
    /// for the swap, and every open watch goes on from the new history — it catches up from it, or
    /// ends with <see cref="RevisionCompactedException"/> when its next revision is at or below the
    /// new compaction point. A crash at any point leaves the old store or the new one, never a mix.
    /// </summary>
    /// <remarks>
    /// Watches see a consistent stream only if the image extends this store's history (as a Raft
    /// snapshot from the leader does): the revisions they already received are not taken back.
    /// Writes queued behind the restore apply to the new state.
    /// </remarks>
    /// <param name="image">The image stream, read once.</param>
    /// <param name="expectedConsistentIndex">When given, the consistent index the image must hold (a Raft snapshot's index); otherwise nothing changes.</param>
    /// <param name="cancellationToken">Cancels the restore while it writes the new file; once the swap is queued it happens.</param>
    /// <exception cref="InvalidDataException">The stream is not a whole, well-formed image, or not at <paramref name="expectedConsistentIndex"/>; nothing changed.</exception>
    /// <exception cref="CorruptionException">The image is not an MVCC store this library reads; nothing changed.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed (now or earlier).</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    internal async ValueTask RestoreImageAsync(Stream image, ulong? expectedConsistentIndex = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        ThrowIfDisposed();
        _state.ThrowIfFailed();
        if (ResumeOnScheduler)
        {
            // Deterministic mode: the swap's WaitForNoReaders blocks the thread, and on the
            // scheduler's one thread an image still being written out (this store's own snapshot,
            // suspended in an await) could then never end. Wait for those here, asynchronously.
            // Images are captured on the same apply pipeline that restores, so none begins meanwhile.
            await WhenNoImagesOpenAsync().ConfigureAwait(true);
        }

        string incoming = _state.Path + IncomingSuffix;
        DeleteRestoreLeftovers(_fileSystem, _state.Path);
        var btreeOptions = BTreeOptionsOf(_state.Options);
        await BTreeDatabase.RestoreImageAsync(_fileSystem, incoming, image, btreeOptions, cancellationToken).ConfigureAwait(ResumeOnScheduler);

        PreparedRestore prepared;
        try
        {
            // Load it beside the live store, so a bad image changes nothing and the swap is short.
            using var database = BTreeDatabase.Open(_fileSystem, incoming, btreeOptions);
            var (loaded, resumed, attached) = StoreLoader.Load(database, _state.Path, _state.Options);
            Leases.LeaseLoader.Load(database, loaded, attached);
            if (expectedConsistentIndex is { } expected && loaded.ConsistentIndex != expected)
            {
                throw new InvalidDataException($"The image holds a store at consistent index {loaded.ConsistentIndex}, not the {expected} it was restored as.");
            }

            prepared = new PreparedRestore(_fileSystem, Directory, incoming, btreeOptions, loaded, resumed);
        }
        catch
        {
            DeleteRestoreLeftovers(_fileSystem, _state.Path);
            throw;
        }

        DeleteIfExists(_fileSystem, incoming + ".lock");
        await Submit<object?>(new WriteOp(WriteOpKind.Restore, prepared, 0), cancellationToken).ConfigureAwait(ResumeOnScheduler);
    }

    /// <summary>
    /// FOR TESTS ONLY: damages this store behind the log's back, as a bad disk or a bug would —
    /// flips the last byte of the first stored revision at or after <paramref name="revision"/> (the
    /// value's last byte, so it still decodes), or with <paramref name="header"/> sets its kind byte
    /// to one no version defines (so it no longer decodes), in a synced B+tree commit, without a new
    /// revision. Reads and <see cref="HashKV"/> see the damage; nothing else notices. Returns the
    /// revision hit.
    /// </summary>
    internal async ValueTask<long> CorruptStoredValueForTestsAsync(long revision, bool header = false)
    {
        await SyncAsync().ConfigureAwait(ResumeOnScheduler);
        using var tx = _state.Database.BeginWrite();
        var keys = tx.OpenBucket(MetaKeys.KeyBucket)!;
        var cursor = keys.CreateCursor();
        if (!cursor.Seek(RevisionKey.Start(revision)) || !RevisionKey.TryDecode(cursor.Key, out var hit, out _))
        {
            throw new InvalidOperationException($"No stored revision at or after {revision} to damage.");
        }

        byte[] key = cursor.Key.ToArray();
        byte[] value = cursor.Value.ToArray();
        if (header)
        {
            value[StoredValue.KindOffset] = 0x7F;
        }
        else
        {
            value[^1] ^= 0x01;
        }

        keys.Put(key, value);
        tx.Commit(CommitDurability.Synced);
        return hit.Main;
    }

    // Images open (captured, not yet disposed): counted in deterministic mode only, see RestoreImageAsync.
    private readonly Lock _imagesGate = new();
    private int _imagesOpen;
    private TaskCompletionSource? _imagesClosed;

    private void OnImageOpened()
    {
        if (ResumeOnScheduler)
        {
            lock (_imagesGate)
            {
                _imagesOpen++;
            }
        }
    }

    private void OnImageClosed()
    {
        if (!ResumeOnScheduler)
        {
            return;
        }

        TaskCompletionSource? closed = null;
        lock (_imagesGate)
        {
            if (--_imagesOpen < 0)
            {
                throw new InvariantViolationException("MVCC store: more snapshot images closed than were opened.");
            }

            if (_imagesOpen == 0)
            {
                (closed, _imagesClosed) = (_imagesClosed, null);
            }
        }

        closed?.SetResult();
    }

    private Task WhenNoImagesOpenAsync()
    {
        lock (_imagesGate)
        {
            if (_imagesOpen == 0)
            {
                return Task.CompletedTask;
            }

            _imagesClosed ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _imagesClosed.Task;
        }
    }

    /// <summary>Removes what an interrupted restore left beside <paramref name="path"/> (it never replaced the store).</summary>
    private static void DeleteRestoreLeftovers(IFileSystem fileSystem, string path)
    {
        string incoming = path + IncomingSuffix;
        foreach (string leftover in (string[])[incoming, incoming + ".lock", incoming + ".restoring", incoming + ".restoring.lock"])
        {
            DeleteIfExists(fileSystem, leftover);
        }
    }

    private static void DeleteIfExists(IFileSystem fileSystem, string path)
    {
        if (fileSystem.FileExists(path))
        {
            fileSystem.DeleteFile(path);
        }
    }

    /// <summary>
    /// The B+tree's options: the store's logger when the B+tree has none, and always the existing
    /// file's page size (see <see cref="MvccStoreOptions.BTree"/>: the page size is chosen at
    /// creation, and the default changed from 4 KiB to 16 KiB).
    /// </summary>
    private static BTreeOptions BTreeOptionsOf(MvccStoreOptions options) => options.BTree with
    {
        Logger = options.BTree.Logger ?? options.Logger,
        AdoptExistingPageSize = true,
    };
}
