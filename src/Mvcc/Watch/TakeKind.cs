namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>The kinds of <see cref="TakeResult"/>.</summary>
internal enum TakeKind
{
    /// <summary>Deliver a response.</summary>
    Respond,

    /// <summary>The watch is over.</summary>
    End,

    /// <summary>Read history (the watcher is unsynced).</summary>
    CatchUp,

    /// <summary>Nothing to do until woken.</summary>
    Wait,
}
