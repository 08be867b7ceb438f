using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// One watch's state in the hub: what it watches, where it is (<see cref="WatcherState"/>), the live
/// events its consumer has not taken, and the consumer's pending wait.
/// </summary>
/// <remarks>
/// Every mutable field is guarded by the hub's lock (<see cref="WatchHub"/>). Invariants: the
/// buffer holds whole revisions in order, all at or above <see cref="StartRevision"/>; a watcher is in
/// the index exactly when it is <see cref="WatcherState.Synced"/>; while
/// <see cref="WatcherState.Unsynced"/>, every matching event below <see cref="Next"/> is buffered or
/// delivered and none at or above it is.
/// </remarks>
internal sealed class Watcher
{
    public Watcher(long id, WatchRequest request)
    {
        Id = id;
        Key = request.Key.ToArray();
        var end = request.RangeEnd.Span;
        IsSingleKey = end.IsEmpty;
        End = end.IsEmpty || (end.Length == 1 && end[0] == 0) ? null : end.ToArray();
        NoPut = request.NoPut;
        NoDelete = request.NoDelete;
        PrevKv = request.PrevKv;
        ProgressNotify = request.ProgressNotify;
        ReuseEvents = request.ReuseEvents;
    }

    public long Id { get; }

    public byte[] Key { get; }

    /// <summary>True for a one-key watch.</summary>
    public bool IsSingleKey { get; }

    /// <summary>The exclusive end of a range watch; null for "every key &gt;= <see cref="Key"/>" (and unused for one key).</summary>
    public byte[]? End { get; }

    public bool NoPut { get; }

    public bool NoDelete { get; }

    public bool PrevKv { get; }

    public bool ProgressNotify { get; }

    /// <summary>The consumer reuses its events after each response (<see cref="WatchRequest.ReuseEvents"/>).</summary>
    public bool ReuseEvents { get; }

    public WatcherState State { get; set; }

    /// <summary>The first revision the watch reports (the request's, or the one after the store's at creation).</summary>
    public long StartRevision { get; set; }

    /// <summary>While unsynced: the first revision not yet buffered or delivered (where the consumer reads history from).</summary>
    public long Next { get; set; }

    /// <summary>Live changes not yet taken; null while empty (an idle watcher holds no buffer).</summary>
    public WatchBuffer? Buffer { get; set; }

    /// <summary>An emptied buffer its consumer handed back for the writer's next events (kept only for a busy watcher: see <see cref="WatchHub.MinReusedBufferCapacity"/>).</summary>
    public WatchBuffer? SpareBuffer { get; set; }

    /// <summary>Writer only, during one revision's notify: the buffer's count before it, -1 when untouched.</summary>
    public int StagedFrom { get; set; } = -1;

    /// <summary>Writer only: the watcher is in the hub's list of consumers to wake at the end of the current notify.</summary>
    public bool WakeQueued { get; set; }

    /// <summary>The consumer waiting for something to happen, or null.</summary>
    public TaskCompletionSource<bool>? Waiter { get; set; }

    public bool ProgressRequested { get; set; }

    /// <summary>A response was taken since the last periodic progress tick.</summary>
    public bool DeliveredSinceTick { get; set; }

    /// <summary>At the consumer's last take of a buffer: <see cref="DeliveredSinceTick"/> before it (see <see cref="WatchHub.Take"/>).</summary>
    public bool DeliveredBeforeTake { get; set; }

    /// <summary>At the consumer's last take of a buffer: the hub's progress ticks so far.</summary>
    public long TicksAtTake { get; set; }

    /// <summary>Why the watch ended (null: the consumer left); set with <see cref="WatcherState.Ended"/>.</summary>
    public Exception? EndReason { get; set; }

    /// <summary>The index group it is in while synced.</summary>
    public WatcherGroup? Group { get; set; }

    public int SlotInGroup { get; set; } = -1;

    /// <summary>True when <paramref name="key"/> is in the watched key or range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Matches(ReadOnlySpan<byte> key)
    {
        if (IsSingleKey)
        {
            return key.SequenceEqual(Key);
        }

        return key.SequenceCompareTo(Key) >= 0 && (End is null || key.SequenceCompareTo(End) < 0);
    }

    /// <summary>True when the watch's filters let an event of this kind through.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Accepts(bool tombstone) => tombstone ? !NoDelete : !NoPut;

    /// <summary>Wakes the waiting consumer, if any (hub lock held; continuations run asynchronously).</summary>
    public void Wake()
    {
        var waiter = Waiter;
        Waiter = null;
        waiter?.TrySetResult(true);
    }
}
