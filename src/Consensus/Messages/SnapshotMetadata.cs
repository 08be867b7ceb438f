namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// A Raft snapshot as the core sees it: which log prefix the application state covers (up to and
/// including <see cref="Index"/>) and the configuration at that point. The core never touches the
/// application's data: the host keeps it in its own snapshot store (a file, a B+tree image) and
/// moves it out of band of the messages, as a stream, so a snapshot of any size takes bounded memory.
/// </summary>
/// <remarks>
/// <para>The protocol a host follows (docs/consensus.md, "Snapshots"):</para>
/// <list type="number">
/// <item>Sending: a <see cref="MessageType.Snapshot"/> message carries only this metadata. The sending
/// host opens the data of the snapshot at <see cref="Index"/> from its own store (the one
/// <see cref="IRaftStorage.Snapshot"/> describes) and streams it to the peer with the message; it then
/// calls <see cref="RawNode.ReportSnapshot"/> with the outcome.</item>
/// <item>Receiving: the host saves the streamed data durably first, then steps the message. If the
/// core accepts it, a later <see cref="Ready.Snapshot"/> names this metadata: the host restores the
/// application from the saved data, persists the metadata, and applies it to its storage.</item>
/// </list>
/// </remarks>
/// <param name="Index">The last log index the snapshot includes.</param>
/// <param name="Term">The term of the entry at <paramref name="Index"/>.</param>
/// <param name="ConfState">The configuration as of <paramref name="Index"/>.</param>
public sealed record SnapshotMetadata(ulong Index, ulong Term, ConfState ConfState)
{
    /// <summary>Metadata of "no snapshot".</summary>
    public static SnapshotMetadata Empty { get; } = new(0, 0, ConfState.Empty);

    /// <summary>True when this is no snapshot at all (index 0).</summary>
    public bool IsEmpty => Index == 0;
}
