namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// The consumer side of a watch: takes the watcher's buffered events, or (while it is unsynced)
/// reads its missed revisions from history on the consumer's own thread, or waits to be woken.
/// </summary>
internal sealed class WatchEnumerator(WatchStream stream, MvccStore store, WatchHub hub, Watcher watcher, CancellationToken cancellationToken) : IAsyncEnumerator<WatchResponse>
{
    /// <summary>The scratch list's capacity kept between responses at most (a piece is at most <see cref="WatchHub.MaxEventsPerResponse"/> events but for one larger revision).</summary>
    private const int MaxKeptScratchCapacity = 4 * WatchHub.MaxEventsPerResponse;

    /// <summary>
    /// Reusing watch only (<see cref="WatchRequest.ReuseEvents"/>): the event objects, and the list of
    /// the last live response, overwritten for the next one.
    /// </summary>
    private readonly ReusedEvents? _reused = watcher.ReuseEvents ? new ReusedEvents() : null;
    private readonly List<WatchEvent>? _reusedList = watcher.ReuseEvents ? [] : null;

    /// <summary>
    /// Ordinary watch only: the list a live piece's events are decoded into, then copied to the
    /// response's own array of exactly their number. A list grown per response from empty to 256
    /// events allocated ~16 B per event (its doubling arrays and itself), the array ~8 B.
    /// Bound: replaced when one large revision grew it past <see cref="MaxKeptScratchCapacity"/>.
    /// </summary>
    private List<WatchEvent> _scratch = [];

    /// <summary>
    /// A live buffer this consumer took and emptied, offered back to the hub at each take for reuse
    /// until the hub has room for it (see <see cref="WatchHub.Take"/>): at most one.
    /// </summary>
    private WatchBuffer? _emptied;

    /// <summary>A taken live buffer whose events are handed out in pieces (<see cref="WatchHub.MaxEventsPerResponse"/>), and the revision of its take's response.</summary>
    private WatchBuffer? _decoding;
    private long _decodingRevision;

    /// <summary>The take of <see cref="_decoding"/> answered a progress request: it gives a response even with no event.</summary>
    private bool _answersProgress;

    /// <summary>A response was given from <see cref="_decoding"/>'s take.</summary>
    private bool _deliveredFromTake;

    /// <summary>The last taken buffer held no event for the watcher (only spans of changes it does not take) and gave no response: told to the hub at the next take.</summary>
    private bool _tookNothing;

    /// <summary>
    /// Reusing watch only: a drained buffer whose held batches the last response's keys and values
    /// slice; emptied (its batches released) at the next <see cref="MoveNextAsync"/> or at the end,
    /// when the consumer may no longer read them.
    /// </summary>
    private WatchBuffer? _lent;

    public WatchResponse Current { get; private set; } = null!;

    public async ValueTask<bool> MoveNextAsync()
    {
        // The consumer is done with the last response: a reusing watch may overwrite its events and
        // let go of the bytes they slice.
        _reused?.Restart();
        if (_lent is { } lent)
        {
            _lent = null;
            lent.Empty();
            _emptied = lent;
        }

        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_decoding is not null)
            {
                if (NextPiece() is { } piece)
                {
                    Current = piece;
                    return true;
                }

                continue;
            }

            var step = hub.Take(watcher, ref _emptied, _tookNothing);
            _tookNothing = false;
            switch (step.Kind)
            {
                case TakeKind.Respond:
                    if (step.Buffer is { } buffer)
                    {
                        // The events are built here, on the consumer's thread, from the bytes the
                        // writer staged (WatchBuffer): the writer adds no object per event.
                        _decoding = buffer;
                        _decodingRevision = step.Revision;
                        _answersProgress = step.AnswersProgress;
                        _deliveredFromTake = false;
                        if (NextPiece() is not { } first)
                        {
                            continue;
                        }

                        Current = first;
                    }
                    else
                    {
                        Current = Build(Array.Empty<WatchEvent>(), [], step.Revision);
                    }

                    return true;
                case TakeKind.End:
                    stream.Dispose();
                    if (step.Reason is not null)
                    {
                        throw step.Reason;
                    }

                    return false;
                case TakeKind.CatchUp:
                    List<WatchEvent> events;
                    long covered;
                    try
                    {
                        (events, covered) = HistoryReader.Read(hub.State, watcher, step.Revision, step.Target);
                    }
                    catch (Exception e)
                    {
                        // Compacted history, a faulted or closed store: the watch ends with it.
                        hub.End(watcher, e);
                        continue;
                    }

                    hub.CaughtUpThrough(watcher, covered, events.Count > 0);
                    if (events.Count > 0)
                    {
                        Current = Build(events, covered);
                        return true;
                    }

                    continue;
                case TakeKind.Wait:
                    var woken = step.Waiter!.Task;
                    if (cancellationToken.CanBeCanceled)
                    {
                        await SchedulerWaits.WaitAsync(woken, cancellationToken).ConfigureAwait(store.ResumeOnScheduler);
                    }
                    else
                    {
                        await woken.ConfigureAwait(store.ResumeOnScheduler);
                    }

                    continue;
                default:
                    throw new InvariantViolationException($"MVCC watch: unexpected step {step.Kind}.");
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        stream.Dispose();

        // Lets go of the pending batches a partly delivered (or, reusing, a lent) buffer holds.
        _decoding?.Empty();
        _decoding = null;
        _lent?.Empty();
        _lent = null;
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The next response of the taken buffer: its next whole revisions, up to
    /// <see cref="WatchHub.MaxEventsPerResponse"/> events. A piece before the last carries the
    /// revision through which it read the buffer (every event of the range up to it is delivered: the
    /// buffer holds them all, in order); the last carries the take's revision. Null when the buffer
    /// held no event for the watcher at all (only spans of changes it does not take) and the take
    /// answered no progress request: there is nothing to respond.
    /// </summary>
    private WatchResponse? NextPiece()
    {
        var buffer = _decoding!;
        var events = _reusedList ?? _scratch;
        events.Clear();

        long through;
        try
        {
            through = buffer.TakeEvents(WatchHub.MaxEventsPerResponse, events, _reused, watcher);
        }
        catch
        {
            _decoding = null;
            throw;
        }

        if (buffer.Drained)
        {
            _decoding = null;
            through = _decodingRevision;
            if (_reused is null || events.Count == 0)
            {
                buffer.Empty();
                _emptied = buffer;
            }
            else
            {
                // Its batches hold the bytes this response's keys and values slice.
                _lent = buffer;
            }

            // Only a take's first piece can be empty (a piece ends early only before a revision
            // with events for the watcher); an empty response is a progress notification.
            if (events.Count == 0 && !_answersProgress)
            {
                _tookNothing = !_deliveredFromTake;
                return null;
            }
        }

        _deliveredFromTake = true;
        if (_reusedList is not null)
        {
            return Build(events, through);
        }

        // The response keeps its events: an array of their number (the scratch list is decoded into again).
        var own = events.ToArray();
        events.Clear();
        if (events.Capacity > MaxKeptScratchCapacity)
        {
            _scratch = [];
        }

        return Build(own, own, through);
    }

    private WatchResponse Build(List<WatchEvent> events, long revision) =>
        Build(events, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(events), revision);

    /// <summary>
    /// The response of <paramref name="events"/> (a list or an array; <paramref name="inPlace"/> is
    /// its storage): a watch that asked for previous key-values (<see cref="WatchRequest.PrevKv"/>)
    /// gets each event with its key's version before it, replaced in place.
    /// </summary>
    private WatchResponse Build(IReadOnlyList<WatchEvent> events, Span<WatchEvent> inPlace, long revision)
    {
        if (watcher.PrevKv)
        {
            for (int i = 0; i < inPlace.Length; i++)
            {
                inPlace[i] = WithPrevious(inPlace[i]);
            }
        }

        return new WatchResponse { Header = store.NewHeader(revision), Events = events };
    }

    /// <summary>The event with the key's version just before it (etcd's watch server reads it the same way, at the event's revision - 1).</summary>
    private WatchEvent WithPrevious(WatchEvent watchEvent)
    {
        var kv = watchEvent.Kv;
        if (watchEvent.Type == WatchEventType.Put && kv.Version == 1)
        {
            return watchEvent;
        }

        try
        {
            var previous = store.Range(new RangeRequest { Key = kv.Key, Revision = kv.ModRevision - 1 }).Kvs;
            return previous.Count == 0 ? watchEvent : new WatchEvent { Type = watchEvent.Type, Kv = kv, PrevKv = previous[0] };
        }
        catch (RevisionCompactedException)
        {
            return watchEvent;
        }
    }
}
