using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>What <see cref="LogReplay"/> rebuilt from the write-ahead log.</summary>
/// <param name="Table">Every entry's slot (the cache still empty).</param>
/// <param name="HardState">The last hard state written (empty when none).</param>
/// <param name="BootstrapConfiguration">The configuration of the bootstrap record, or empty.</param>
/// <param name="Markers">Every snapshot marker still in the log, oldest first, with where it is.</param>
/// <param name="IsEmpty">No record at all: the log was never written.</param>
internal sealed record ReplayedLog(
    EntryTable Table,
    HardState HardState,
    ConfState BootstrapConfiguration,
    IReadOnlyList<(SnapshotMarker Marker, WalPosition Position)> Markers,
    bool IsEmpty);
