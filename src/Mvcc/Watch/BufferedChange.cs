namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// One item of a watcher's live buffer (<see cref="WatchBuffer"/>): the stored bytes of a change the
/// consumer decodes into its <see cref="WatchEvent"/> (a slice of a pending batch the buffer holds),
/// the event itself when the writer built it once for several watchers, or a span of a committed
/// batch's entries the consumer reads and filters itself (<see cref="IsSpan"/>).
/// </summary>
/// <remarks>A struct in a reused list: staging a change or a span adds no object on the writer's thread.</remarks>
internal readonly struct BufferedChange
{
    /// <summary>A change the consumer decodes from <paramref name="stored"/> (held: see <see cref="WatchBuffer.Holds"/>).</summary>
    public BufferedChange(long main, bool tombstone, ReadOnlyMemory<byte> stored)
    {
        Main = main;
        Tombstone = tombstone;
        Stored = stored;
    }

    /// <summary>A change whose event is already built (shared by every watcher that takes it; events are immutable).</summary>
    public BufferedChange(WatchEvent built)
    {
        Main = built.Kv.ModRevision;
        Built = built;
    }

    /// <summary>
    /// The entries [<paramref name="start"/>, <paramref name="end"/>) of the buffer's held batch number
    /// <paramref name="heldBatch"/>: whole revisions, the first of them <paramref name="firstMain"/>, each
    /// change of which the consumer takes when it is in the watched range and passes the filters.
    /// </summary>
    private BufferedChange(long firstMain, int heldBatch, int start, int end)
    {
        Main = firstMain;
        HeldBatch = heldBatch;
        SpanStart = start;
        SpanEnd = end;
    }

    /// <summary>The change's main revision (a span's: its first).</summary>
    public long Main { get; }

    public bool Tombstone { get; }

    /// <summary>The stored value (docs/formats.md, "MVCC store"); empty when <see cref="Built"/> is set and for a span.</summary>
    public ReadOnlyMemory<byte> Stored { get; }

    /// <summary>The event, when the writer built it; null when the consumer decodes <see cref="Stored"/> or reads a span.</summary>
    public WatchEvent? Built { get; }

    /// <summary>For a span: the index of its batch among the buffer's held batches.</summary>
    public int HeldBatch { get; }

    /// <summary>For a span: the batch position of its first entry.</summary>
    public int SpanStart { get; }

    /// <summary>For a span: the batch position after its last entry (above 0); 0 for a single change.</summary>
    public int SpanEnd { get; }

    /// <summary>True for a span of a batch's entries rather than one change.</summary>
    public bool IsSpan => SpanEnd > 0;

    /// <summary>For the live buffer's bound (<see cref="WatchOptions.MaxBufferedEvents"/>): a change counts one, a span every change it covers (an upper bound of its events).</summary>
    public int Changes => IsSpan ? SpanEnd - SpanStart : 1;

    /// <summary>A span of whole revisions, the first <paramref name="firstMain"/>: entries [<paramref name="start"/>, <paramref name="end"/>) of held batch number <paramref name="heldBatch"/>.</summary>
    public static BufferedChange Span(long firstMain, int heldBatch, int start, int end)
    {
        if (start < 0 || end <= start || heldBatch < 0)
        {
            throw new InvariantViolationException($"MVCC watch: a span [{start}, {end}) of held batch {heldBatch}.");
        }

        return new BufferedChange(firstMain, heldBatch, start, end);
    }
}
