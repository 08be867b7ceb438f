namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// The type byte of each record <see cref="DurableRaftLog"/> writes to its write-ahead log (layouts
/// in docs/formats.md, "Durable Raft log records"). The values are on disk: never renumber.
/// </summary>
internal enum LogRecordType : byte
{
    /// <summary>One log entry: the record's index is the entry's; the payload is <see cref="Messages.MessageCodec.EncodeEntry"/>.</summary>
    Entry = 1,

    /// <summary>The hard state (term, vote, commit) as of this point: <see cref="Messages.MessageCodec.EncodeHardState"/>.</summary>
    HardState = 2,

    /// <summary>A snapshot installed or taken (<see cref="SnapshotMarker"/>): the log starts after it from here on.</summary>
    SnapshotMarker = 3,

    /// <summary>The initial configuration of a new cluster; only ever the first record of a log.</summary>
    Bootstrap = 4,
}
