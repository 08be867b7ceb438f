namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// One change in a watcher's live buffer (<see cref="WatchBuffer"/>): the stored bytes of a revision
/// the consumer decodes into its <see cref="WatchEvent"/> (a slice of a pending batch the buffer
/// holds), or the event itself when the writer built it once for several watchers.
/// </summary>
/// <remarks>A struct in a reused list: staging a change adds no object on the writer's thread.</remarks>
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

    /// <summary>The change's main revision.</summary>
    public long Main { get; }

    public bool Tombstone { get; }

    /// <summary>The stored value (docs/formats.md, "MVCC store"); empty when <see cref="Built"/> is set.</summary>
    public ReadOnlyMemory<byte> Stored { get; }

    /// <summary>The event, when the writer built it; null when the consumer decodes <see cref="Stored"/>.</summary>
    public WatchEvent? Built { get; }
}
