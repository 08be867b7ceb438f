namespace EmbeddedRaft.Mvcc;

/// <summary>
/// What to watch, as etcd's <c>WatchCreateRequest</c>: one key (<see cref="RangeEnd"/> empty), the
/// keys in [<see cref="Key"/>, <see cref="RangeEnd"/>) (a prefix: <see cref="KeyRange.PrefixEnd"/>),
/// or every key &gt;= <see cref="Key"/> (<see cref="RangeEnd"/> the single byte 0,
/// <see cref="KeyRange.AllKeysFrom"/>), from a start revision, with filters.
/// </summary>
public sealed class WatchRequest
{
    /// <summary>The key, or the first key of the range. Must not be empty.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>Empty for a single key; the byte 0 for every key &gt;= <see cref="Key"/>; otherwise the exclusive end (above <see cref="Key"/>).</summary>
    public ReadOnlyMemory<byte> RangeEnd { get; init; }

    /// <summary>
    /// The first revision whose events to deliver: 0 for the next write after the watch is created;
    /// a past revision replays the store's history from it, then goes live; a future one waits for it.
    /// At or below <see cref="MvccStore.CompactRevision"/> the stream ends with a
    /// <see cref="RevisionCompactedException"/>. Not negative.
    /// </summary>
    public long StartRevision { get; init; }

    /// <summary>Leave out put events (etcd's <c>NOPUT</c> filter).</summary>
    public bool NoPut { get; init; }

    /// <summary>Leave out delete events (etcd's <c>NODELETE</c> filter).</summary>
    public bool NoDelete { get; init; }

    /// <summary>Give each event the key's previous version (<see cref="WatchEvent.PrevKv"/>); costs one read per event.</summary>
    public bool PrevKv { get; init; }

    /// <summary>
    /// Send a progress notification (a response without events, <see cref="WatchResponse.IsProgressNotify"/>)
    /// every <see cref="WatchOptions.ProgressInterval"/> in which the watch delivered nothing.
    /// </summary>
    public bool ProgressNotify { get; init; }

    /// <summary>
    /// Let the watch reuse what it hands out (not in etcd: a .NET consumer's choice, off by default). When
    /// true, a response's events, their <see cref="WatchEvent.Kv"/>, the <see cref="WatchResponse.Events"/>
    /// list and the memory of the keys and values (which may point into the store's own buffers) are
    /// valid only until the next <c>MoveNextAsync</c> of the enumeration, or its end: read or copy what
    /// you keep (<c>kv.Value.ToArray()</c>) before asking for the next response. In exchange a live
    /// watch allocates nothing per event, so a consumer reading every write of a busy store adds no
    /// garbage collections to the store's writer; except while its consumer is more than a few
    /// committed batches behind: the store's writer then builds that watch's further events itself,
    /// as ordinary immutable ones (so the batches' memory is not pinned for a consumer that stopped),
    /// until the consumer has taken them. The guarantees (order, atomic revisions, no gap or
    /// duplicate, header revisions) are the same. False: every response and its events are immutable
    /// and the consumer's to keep.
    /// </summary>
    public bool ReuseEvents { get; init; }

    /// <summary>Checks the request.</summary>
    /// <exception cref="MvccException">The key is empty (etcd's error).</exception>
    /// <exception cref="ArgumentOutOfRangeException">A negative start revision.</exception>
    /// <exception cref="ArgumentException">A range end that is not above the key.</exception>
    internal void Validate()
    {
        if (Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        if (StartRevision < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(StartRevision), StartRevision, $"{nameof(StartRevision)} must not be negative (0 means from the next write).");
        }

        var end = RangeEnd.Span;
        if (!end.IsEmpty && !(end.Length == 1 && end[0] == 0) && end.SequenceCompareTo(Key.Span) <= 0)
        {
            throw new ArgumentException($"The watch's {nameof(RangeEnd)} {MvccText.Show(end)} must be above its {nameof(Key)} {MvccText.Show(Key.Span)} (or empty for one key, or the byte 0 for every key from it).", nameof(RangeEnd));
        }
    }
}
