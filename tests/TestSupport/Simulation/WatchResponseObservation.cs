using System.Globalization;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// One response a watch delivered, as received: its header revision (the store promises every event of
/// the watched range at or below it has been delivered, and every later event is above it) and its
/// events in order; no events is a progress notification.
/// </summary>
/// <param name="HeaderRevision">The response header's revision (WatchResponse.Header.Revision).</param>
/// <param name="Events">The events, as delivered (converted one to one from WatchResponse.Events).</param>
public sealed record WatchResponseObservation(long HeaderRevision, IReadOnlyList<CommittedEvent> Events)
{
    /// <summary>Whether this was a progress notification (no events).</summary>
    public bool IsProgressNotify => Events.Count == 0;

    /// <inheritdoc/>
    public override string ToString() => IsProgressNotify
        ? string.Create(CultureInfo.InvariantCulture, $"progress {HeaderRevision}")
        : string.Create(CultureInfo.InvariantCulture, $"header {HeaderRevision}: {string.Join(", ", Events)}");
}
