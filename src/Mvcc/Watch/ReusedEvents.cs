using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// The event objects one reusing watch's consumer owns (<see cref="WatchRequest.ReuseEvents"/>):
/// each live response's decoded events are written into them, from the first on, once the consumer
/// asked for the next response; so a live watch allocates no object per event once it has handed out
/// its largest response.
/// </summary>
/// <remarks>
/// Thread-safety: the consumer's alone (its <c>MoveNextAsync</c> calls are sequential). Bound: as many
/// instances as the largest response had decoded events (a piece of
/// <see cref="WatchHub.MaxEventsPerResponse"/>, or one larger transaction). Events the writer built
/// once for several watchers are never among them: they are shared, so they are handed out as they are
/// and never overwritten.
/// </remarks>
internal sealed class ReusedEvents
{
    private readonly List<WatchEvent> _owned = [];

    /// <summary>Instances handed out since <see cref="Restart"/>. Invariant: at most <c>_owned.Count</c>.</summary>
    private int _handedOut;

    /// <summary>Instances owned (for tests).</summary>
    internal int Count => _owned.Count;

    /// <summary>The consumer asked for its next response: every instance may be overwritten again.</summary>
    public void Restart() => _handedOut = 0;

    /// <summary>An instance not handed out since <see cref="Restart"/>, for the caller to overwrite.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public WatchEvent Next()
    {
        if (_handedOut == _owned.Count)
        {
            AddOne();
        }

        return _owned[_handedOut++];
    }

    /// <summary>One more instance, with a key-value of its own: it is overwritten with the event (<see cref="WatchEvent.Overwrite"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void AddOne() => _owned.Add(new WatchEvent { Kv = new KeyValue() });
}
