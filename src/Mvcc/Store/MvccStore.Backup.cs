using System.Security.Cryptography;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc;

// Backups (issue 19, etcd's Maintenance.Snapshot): a point-in-time copy of the store as a B+tree
// file. Kept apart from the writer: the writer only commits and opens a read transaction (the
// checkpoint a Raft snapshot also starts from); the copy is built off it.
public sealed partial class MvccStore
{
    /// <summary>Infix of a backup's file beside <c>mvcc.db</c> (deleted when the backup is disposed).</summary>
    internal const string BackupInfix = ".backup-";

    private const int BackupEntriesPerCommit = 50_000;

    private readonly Lock _backupGate = new();

    /// <summary>Backups made and not yet disposed (their files are live). Guarded by <see cref="_backupGate"/>.</summary>
    private int _liveBackups;

    /// <summary>
    /// Makes a <see cref="StoreBackup"/>: commits what is applied and begins a read transaction on
    /// that commit (one step of the writer), then copies every bucket of that transaction — in key
    /// order, so the copy's pages are full — into a new B+tree file in the store's directory, off
    /// the writer: writes go on meanwhile and are not in the copy. Then hashes the copy.
    /// </summary>
    /// <remarks>
    /// Leftover backup files of a process that crashed while holding one are deleted when a backup is
    /// made and no other is live. While the copy is made, the read transaction keeps its pages from
    /// reuse (the store's file may grow) and a snapshot restore on this store waits for it.
    /// </remarks>
    /// <exception cref="StorageFaultedException">A write or flush failed (now or earlier).</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; nothing is left behind.</exception>
    internal async ValueTask<StoreBackup> CreateBackupAsync(CancellationToken cancellationToken)
    {
        lock (_backupGate)
        {
            // Under the gate: no other backup creates its file while leftovers are deleted.
            if (_liveBackups++ == 0)
            {
                DeleteBackupLeftovers();
            }
        }

        string path = _state.Path + BackupInfix + Guid.NewGuid().ToString("N");
        bool handedOver = false;
        try
        {
            var checkpoint = (Checkpoint)(await Submit<object?>(new WriteOp(WriteOpKind.Checkpoint, null, 0), cancellationToken).ConfigureAwait(ResumeOnScheduler))!;
            try
            {
                // The copy is synchronous B+tree work: off the caller's thread (a gRPC handler), except
                // in deterministic mode, where nothing may leave the scheduler.
                await OffCallerThread(() => CopyInto(checkpoint.Snapshot, path, cancellationToken), cancellationToken).ConfigureAwait(ResumeOnScheduler);
            }
            finally
            {
                checkpoint.Snapshot.Dispose();
            }

            var (size, sha256) = await OffCallerThread(() => HashFile(path, cancellationToken), cancellationToken).ConfigureAwait(ResumeOnScheduler);
            var backup = new StoreBackup(_fileSystem, path, size, sha256, checkpoint.Revision, checkpoint.CompactRevision, checkpoint.ConsistentIndex,
                ReleaseBackup);
            handedOver = true;
            return backup;
        }
        finally
        {
            if (!handedOver)
            {
                DeleteIfExists(_fileSystem, path);
                DeleteIfExists(_fileSystem, path + ".lock");
                ReleaseBackup();
            }
        }
    }

    private void ReleaseBackup()
    {
        lock (_backupGate)
        {
            _liveBackups--;
        }
    }

    private void CopyInto(Transaction source, string path, CancellationToken cancellationToken)
    {
        var database = BTreeDatabase.Open(_fileSystem, path, BTreeOptionsOf(_state.Options));
        try
        {
            foreach (string name in source.ListBuckets())
            {
                var cursor = source.OpenBucket(name)!.CreateCursor();
                var tx = database.BeginWrite();
                try
                {
                    var bucket = tx.CreateBucket(name);
                    int inBatch = 0;
                    for (bool more = cursor.First(); more; more = cursor.Next())
                    {
                        bucket.Put(cursor.Key, cursor.Value);
                        if (++inBatch == BackupEntriesPerCommit)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                            tx.Commit(CommitDurability.NoSync);
                            tx.Dispose();
                            tx = database.BeginWrite();
                            bucket = tx.OpenBucket(name)!;
                            inBatch = 0;
                        }
                    }

                    tx.Commit(CommitDurability.NoSync);
                }
                finally
                {
                    tx.Dispose();
                }
            }
        }
        finally
        {
            // Disposing syncs the no-sync commits: the copy is whole on disk before it is hashed.
            database.Dispose();
            DeleteIfExists(_fileSystem, path + ".lock");
        }
    }

    private (long Size, byte[] Sha256) HashFile(string path, CancellationToken cancellationToken)
    {
        using var file = _fileSystem.Open(path, FileOpenMode.ReadOnly);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[StoreBackup.DefaultChunkSizeBytes];
        long size = file.Length;
        for (long offset = 0; offset < size;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = file.Read(offset, buffer.AsSpan(0, (int)Math.Min(buffer.Length, size - offset)));
            if (n == 0)
            {
                throw new InvariantViolationException($"The backup file '{path}' ended at {offset} bytes while its length is {size}.");
            }

            hash.AppendData(buffer, 0, n);
            offset += n;
        }

        return (size, hash.GetHashAndReset());
    }

    /// <summary>Deletes backup files no live backup owns (a process that crashed while holding one left them).</summary>
    private void DeleteBackupLeftovers()
    {
        string prefix = Path.GetFileName(_state.Path) + BackupInfix;
        foreach (string name in _fileSystem.ListFiles(Directory))
        {
            if (name.StartsWith(prefix, StringComparison.Ordinal))
            {
                DeleteIfExists(_fileSystem, Path.Combine(Directory, name));
            }
        }
    }

    /// <summary>Runs synchronous file work on the thread pool, or inline in deterministic mode (<see cref="MvccStoreOptions.Scheduler"/> set).</summary>
    private Task OffCallerThread(Action work, CancellationToken cancellationToken)
    {
        if (ResumeOnScheduler)
        {
            cancellationToken.ThrowIfCancellationRequested();
            work();
            return Task.CompletedTask;
        }

        return Task.Run(work, cancellationToken);
    }

    /// <inheritdoc cref="OffCallerThread(Action, CancellationToken)"/>
    private Task<T> OffCallerThread<T>(Func<T> work, CancellationToken cancellationToken)
    {
        if (ResumeOnScheduler)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return Task.FromResult(work());
        }

        return Task.Run(work, cancellationToken);
    }
}
