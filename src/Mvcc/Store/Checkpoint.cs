using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// A read transaction the writer began right after committing everything applied (see
/// <see cref="StoreWriter"/>'s checkpoint), with the store's positions at that commit: the
/// transaction holds exactly the state as of <paramref name="ConsistentIndex"/>.
/// </summary>
internal sealed record Checkpoint(Transaction Snapshot, ulong ConsistentIndex, long Revision, long CompactRevision);
