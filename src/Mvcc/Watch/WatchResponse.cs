namespace EmbeddedRaft.Mvcc;

/// <summary>
/// One step of a watch, as etcd's <c>WatchResponse</c>: the events of one or more whole revisions in
/// revision order (a revision is never split across responses), or none for a progress notification.
/// </summary>
/// <remarks>
/// The promise of <see cref="Header"/>'s revision: every event of the watched range at or below it
/// has been delivered, in this response or an earlier one; the next response's events are all above it.
/// Immutable.
/// </remarks>
public sealed class WatchResponse
{
    /// <summary><see cref="Header"/> of a response made without one: shared (immutable), so a response made with its header allocates no other.</summary>
    private static readonly ResponseHeader s_noHeader = new();

    /// <summary>The revision up to which the watch has delivered every event (see the remarks).</summary>
    public ResponseHeader Header { get; init; } = s_noHeader;

    /// <summary>The events, ordered by revision and, within one, by their order in the write; empty for a progress notification.</summary>
    public IReadOnlyList<WatchEvent> Events { get; init; } = [];

    /// <summary>True for a progress notification: no events, only the revision of <see cref="Header"/>.</summary>
    public bool IsProgressNotify => Events.Count == 0;

    /// <inheritdoc/>
    public override string ToString() => IsProgressNotify ? $"progress {Header.Revision}" : $"revision {Header.Revision}: {string.Join(", ", Events)}";
}
