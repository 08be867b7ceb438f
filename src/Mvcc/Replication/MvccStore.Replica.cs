using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc;

/// <content>
/// What a <see cref="Replication.ReplicatedStore"/> needs of its store beyond the public API:
/// response headers that name the member, replication state written in the data's batches, and
/// the end of an applied Raft batch recorded as the consistent index.
/// </content>
public sealed partial class MvccStore
{
    private Func<long, ResponseHeader>? _headerFactory;

    /// <summary>
    /// Builds the header of responses the store makes itself (watch responses); null (the default)
    /// means a header with only the revision. Set once, before the store is shared.
    /// </summary>
    internal Func<long, ResponseHeader>? HeaderFactory
    {
        get => _headerFactory;
        set => _headerFactory = value;
    }

    /// <summary>A header for a response at <paramref name="revision"/>, through <see cref="HeaderFactory"/> when set.</summary>
    internal ResponseHeader NewHeader(long revision) => _headerFactory?.Invoke(revision) ?? new ResponseHeader { Revision = revision };

    /// <summary>
    /// Puts (or, with a null <paramref name="value"/>, deletes) <paramref name="key"/> in the
    /// replica bucket, in the current batch with the data, and records <paramref name="consistentIndex"/>.
    /// Completes once applied (visible to <see cref="ReadReplicaMeta"/> after the batch commits).
    /// </summary>
    internal ValueTask<object?> PutReplicaMetaAsync(byte[] key, byte[]? value, ulong consistentIndex)
    {
        ArgumentNullException.ThrowIfNull(key);
        return Submit<object?>(new WriteOp(WriteOpKind.ReplicaMeta, Tuple.Create(key, value), consistentIndex), CancellationToken.None);
    }

    /// <summary>
    /// The checks a plain put passes before it is queued (as <see cref="PutAsync"/>'s),
    /// for a put that joins a <see cref="Replication.ReplicatedPutRun"/>: a refusal is thrown here
    /// and the put is not queued.
    /// </summary>
    /// <exception cref="MvccException">As <see cref="PutAsync"/>'s refusals before queueing.</exception>
    internal void CheckPutForRun(PutRequest request)
    {
        if (request.PrevKv)
        {
            throw new InvariantViolationException("MVCC store: a put that asks for its previous key-value cannot join a put run.");
        }

        RequestValidator.CheckPut(request);
        CheckSize(RequestSize.OfPut(request));
    }

    /// <summary>
    /// Queues a run of plain puts (<see cref="CheckPutForRun"/> passed each) as one writer request;
    /// completes once the writer has applied (or refused) every put of it, in order, each under its
    /// own entry's index: the run's results then hold each put's revision or refusal.
    /// </summary>
    internal ValueTask<object?> ApplyPutRunAsync(Replication.ReplicatedPutRun run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return Submit<object?>(new WriteOp(WriteOpKind.PutRun, run, 0), CancellationToken.None);
    }

    /// <summary>
    /// Moves <see cref="ConsistentIndex"/> to <paramref name="consistentIndex"/> unless it is there
    /// already (the last write of the Raft batch carried it): the end of every applied batch.
    /// </summary>
    internal ValueTask<object?> AdvanceConsistentIndexAsync(ulong consistentIndex) =>
        Submit<object?>(new WriteOp(WriteOpKind.ConsistentIndexAtLeast, null, consistentIndex), CancellationToken.None);

    /// <summary>
    /// Makes every write applied so far durable (as <see cref="SyncAsync"/>) and returns the
    /// consistent index that is durable now: the one of the last write queued before the call, or
    /// a later one. A Raft snapshot of a replicated store names only an index this has returned.
    /// </summary>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    internal async ValueTask<ulong> SyncConsistentIndexAsync(CancellationToken cancellationToken)
    {
        var durable = await Submit<object?>(new WriteOp(WriteOpKind.Sync, null, 0), cancellationToken).ConfigureAwait(ResumeOnScheduler);
        return durable is ulong index ? index : throw new InvariantViolationException($"MVCC store: a sync answered {durable ?? "null"}, not the consistent index it made durable.");
    }

    /// <summary>The replica bucket's entries as of the last B+tree commit, in key order (empty when it does not exist).</summary>
    internal List<(byte[] Key, byte[] Value)> ReadReplicaMeta()
    {
        ThrowIfDisposed();
        var entries = new List<(byte[], byte[])>();
        using var read = _state.Database.BeginRead();
        if (read.OpenBucket(MetaKeys.ReplicaBucket) is { } bucket)
        {
            var cursor = bucket.CreateCursor();
            for (bool more = cursor.First(); more; more = cursor.Next())
            {
                entries.Add((cursor.Key.ToArray(), cursor.Value.ToArray()));
            }
        }

        return entries;
    }

    /// <summary>The options the store was opened with.</summary>
    internal MvccStoreOptions Options => _state.Options;

    /// <summary>
    /// The B+tree file's size in bytes (its statistics read only each bucket's leftmost path). While
    /// a snapshot restore swaps the file (the old database is closed before the new one is adopted)
    /// it answers the size last read: a status figure may lag a swap, it must not throw.
    /// </summary>
    internal long DbSizeBytes
    {
        get
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return 0;
            }

            try
            {
                long size = _state.Database.GetStatistics().FileSizeBytes;
                Volatile.Write(ref _lastDbSizeBytes, size);
                return size;
            }
            catch (ObjectDisposedException) when (Volatile.Read(ref _disposed) == 0)
            {
                return Volatile.Read(ref _lastDbSizeBytes);
            }
        }
    }

    private long _lastDbSizeBytes;
}
