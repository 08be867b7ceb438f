using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The store's whole state as of one consistent index, captured cheaply (a B+tree read transaction
/// begun right after a commit) and written out later as a B+tree image, off the writer: the
/// revisions, the meta marks (consistent index, compaction), the leases and any bucket a
/// replicated store keeps beside them (its member registry). Restored with
/// <see cref="MvccStore.RestoreImageAsync"/>.
/// </summary>
/// <remarks>
/// While it is open the B+tree keeps the pages it reads (a long-lived image grows the file), and a
/// restore on the same store waits for it to be disposed. Write it out once; not thread-safe.
/// </remarks>
internal sealed class MvccStoreImage : IStateMachineSnapshot
{
    private readonly Checkpoint _checkpoint;
    private readonly Action? _closed;
    private readonly bool _resumeOnScheduler;
    private int _disposed;

    /// <param name="checkpoint">The read transaction and positions.</param>
    /// <param name="closed">Called once when the image is disposed (the store counts open images in deterministic mode).</param>
    /// <param name="resumeOnScheduler">Deterministic mode: awaits resume on the caller's scheduler.</param>
    public MvccStoreImage(Checkpoint checkpoint, Action? closed = null, bool resumeOnScheduler = false)
    {
        _checkpoint = checkpoint;
        _closed = closed;
        _resumeOnScheduler = resumeOnScheduler;
    }

    /// <summary>The consistent index the image is as of (<see cref="MvccStore.ConsistentIndex"/> when captured).</summary>
    public ulong Index => _checkpoint.ConsistentIndex;

    /// <summary>The store's revision in the image.</summary>
    public long Revision => _checkpoint.Revision;

    /// <summary>The store's compact revision in the image.</summary>
    public long CompactRevision => _checkpoint.CompactRevision;

    /// <summary>Streams the image (format in docs/btree.md, "Images") to <paramref name="destination"/>.</summary>
    /// <exception cref="ObjectDisposedException">The image was disposed.</exception>
    public async ValueTask WriteToAsync(Stream destination, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        await _checkpoint.Snapshot.WriteImageAsync(destination, cancellationToken).ConfigureAwait(_resumeOnScheduler);
    }

    /// <summary>Ends the read transaction (once).</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _checkpoint.Snapshot.Dispose();
            _closed?.Invoke();
        }

        return ValueTask.CompletedTask;
    }
}
