using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// A snapshot image restored into a complete, synced B+tree file beside the store's own
/// (<see cref="IncomingPath"/>) and already loaded — key index, revisions, leases — so the writer's
/// swap only renames, reopens and adopts (<see cref="StoreWriter"/>'s restore).
/// </summary>
/// <param name="FileSystem">The store's file system.</param>
/// <param name="Directory">The store's directory (synced after the rename).</param>
/// <param name="IncomingPath">The restored file, closed.</param>
/// <param name="BTreeOptions">The options the store opens its B+tree with.</param>
/// <param name="Loaded">The state rebuilt from the restored file (its database already disposed).</param>
/// <param name="Resumed">A compaction the image's marks say is unfinished.</param>
internal sealed record PreparedRestore(
    IFileSystem FileSystem, string Directory, string IncomingPath, BTreeOptions BTreeOptions, StoreState Loaded, List<CompactionJob> Resumed);
