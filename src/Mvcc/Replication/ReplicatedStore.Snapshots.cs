using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// Snapshots, interim (A1): the store's B+tree image as of the last applied batch, and a restore
/// that replaces the store's file and reopens it (watches open on the old store end). To be
/// replaced by the in-place image swap (ReplicatedStore.Snapshots.cs of issue 17's lease work),
/// which keeps watches alive.
/// </content>
public sealed partial class ReplicatedStore
{
    /// <summary>
    /// Captures the state as of the last applied batch: commits the store's open batch (synced: the
    /// image must hold every applied write) and opens a read transaction on that commit, which the
    /// node writes out later while applying goes on.
    /// </summary>
    internal IStateMachineSnapshot CreateSnapshotCore()
    {
        var store = Mvcc;

        // Called between two applies on the apply pipeline: blocking it for one commit is what
        // taking the snapshot costs; nothing else waits for this thread meanwhile.
        store.SyncAsync().AsTask().GetAwaiter().GetResult();
        var read = store.BeginCommittedRead();
        return new ImageSnapshot(store.ConsistentIndex, read);
    }

    /// <summary>Replaces the store by the image in <paramref name="data"/> (as of <paramref name="index"/>).</summary>
    internal async ValueTask RestoreSnapshotCoreAsync(ulong index, Stream data, CancellationToken cancellationToken)
    {
        var old = Mvcc;
        await old.DisposeAsync().ConfigureAwait(false);
        string path = Path.Combine(_storeDirectory, StoreLoader.FileName);

        // A crash from here until the rename inside the restore leaves no store: it opens empty,
        // with consistent index 0, below the snapshot, and the node restores the snapshot again.
        if (_fileSystem.FileExists(path))
        {
            _fileSystem.DeleteFile(path);
            _fileSystem.SyncDirectory(_storeDirectory);
        }

        await BTreeDatabase.RestoreImageAsync(_fileSystem, path, data, _storeOptions.BTree, cancellationToken).ConfigureAwait(false);
        var store = MvccStore.Open(_fileSystem, _storeDirectory, _storeOptions);
        store.HeaderFactory = NewHeader;
        if (store.ConsistentIndex != index)
        {
            await store.DisposeAsync().ConfigureAwait(false);
            throw new InvariantViolationException($"Replicated store: the snapshot at index {index} holds a store at consistent index {store.ConsistentIndex}.");
        }

        _registry.Load(store.ReadReplicaMeta());
        Volatile.Write(ref _mvcc, store);
        SetAllPeerAddresses();
        ReplicatedStoreLog.Restored(_logger, MemberId, index, store.Revision);
    }

    /// <summary>A read transaction on one commit of the store's B+tree, written out as an image.</summary>
    private sealed class ImageSnapshot(ulong index, Transaction read) : IStateMachineSnapshot
    {
        public ulong Index => index;

        public async ValueTask WriteToAsync(Stream destination, CancellationToken cancellationToken) =>
            await read.WriteImageAsync(destination, cancellationToken).ConfigureAwait(false);

        public ValueTask DisposeAsync()
        {
            read.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
