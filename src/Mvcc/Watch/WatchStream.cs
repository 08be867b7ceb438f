using EmbeddedRaft.Mvcc.Watch;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// An open watch (<see cref="MvccStore.Watch"/>): enumerate it once with <c>await foreach</c> to
/// receive its <see cref="WatchResponse"/>s; dispose it (or leave the loop) to stop watching.
/// </summary>
/// <remarks>
/// <para>Guarantees (etcd's): events arrive in revision order; every event of the watched range
/// from the start revision on is delivered (none skipped, however slowly the consumer reads); all
/// events of one revision arrive in one response; none twice; a new watch from the last delivered
/// revision + 1 continues exactly where this one stopped.</para>
/// <para>A consumer that falls behind never slows the store's writers: once
/// <see cref="WatchOptions.MaxBufferedEvents"/> are waiting, the watch leaves the live path and
/// reads the missed revisions from the store's history when the consumer asks for them, then
/// rejoins. If the store compacts that history first, enumeration throws
/// <see cref="RevisionCompactedException"/> (its <see cref="RevisionCompactedException.CompactRevision"/>
/// says from where to read and watch again).</para>
/// <para>Ends: the enumeration throws <see cref="RevisionCompactedException"/> as above,
/// <see cref="Storage.StorageFaultedException"/> when the store faults, or
/// <see cref="ObjectDisposedException"/> when the store is disposed (each after the responses
/// already buffered), and <see cref="OperationCanceledException"/> when its cancellation token is
/// cancelled. Thread-safety: enumerate from one consumer; <see cref="RequestProgress"/> and
/// <see cref="Dispose"/> may be called from any thread.</para>
/// </remarks>
public sealed class WatchStream : IAsyncEnumerable<WatchResponse>, IDisposable
{
    private readonly MvccStore _store;
    private readonly WatchHub _hub;
    private readonly Watcher _watcher;
    private int _enumerated;
    private int _disposed;

    internal WatchStream(MvccStore store, WatchHub hub, Watcher watcher)
    {
        _store = store;
        _hub = hub;
        _watcher = watcher;
        StartRevision = watcher.StartRevision;
    }

    /// <summary>The watch's id, unique in its store.</summary>
    public long Id => _watcher.Id;

    /// <summary>The hub's state of this watch (for tests).</summary>
    internal Watcher Watcher => _watcher;

    /// <summary>
    /// The first revision whose events the watch reports: the request's start revision, or (for 0)
    /// the revision after the store's newest one shown to watches when the watch was created.
    /// </summary>
    public long StartRevision { get; }

    /// <summary>
    /// Asks for a progress notification (etcd's <c>RequestProgress</c>): the watch's next response
    /// carries the revision through which it has delivered every event; when no events are waiting
    /// it is a response without events (<see cref="WatchResponse.IsProgressNotify"/>). Does nothing on
    /// a watch that has ended.
    /// </summary>
    public void RequestProgress() => _hub.RequestProgress(_watcher);

    /// <summary>Starts the enumeration; a watch is enumerated once.</summary>
    /// <exception cref="InvalidOperationException">Called a second time.</exception>
    /// <exception cref="ObjectDisposedException">The watch was disposed.</exception>
    public IAsyncEnumerator<WatchResponse> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Interlocked.Exchange(ref _enumerated, 1) != 0)
        {
            throw new InvalidOperationException("A WatchStream is enumerated once; open another watch (from the last revision seen + 1) to read again.");
        }

        return new WatchEnumerator(this, _store, _hub, _watcher, cancellationToken);
    }

    /// <summary>Stops the watch and releases what it holds in the store. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _hub.Unregister(_watcher);
        }
    }

    /// <summary>
    /// <see cref="Dispose"/> (it does not wait for anything), for <c>await using</c>. The type does not
    /// implement <see cref="IAsyncDisposable"/> on purpose: with both interfaces,
    /// <c>watch.ConfigureAwait(false)</c> in an <c>await foreach</c> would not compile (ambiguous).
    /// </summary>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
