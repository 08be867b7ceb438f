using System.Text;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// A lock held through a lease, as etcd's clients build one: whoever creates the lock's key holds
/// it, and the key is attached to the holder's lease, so it disappears when the holder revokes the
/// lease (release) or stops renewing it (a crash, a freeze, a partition: the cluster's leader expires
/// the lease and deletes the key). Waiters watch the key and try again when it is deleted.
/// </summary>
/// <remarks>
/// Holding the lock is not proof on its own that nobody else does by now (a frozen holder learns of
/// its expiry late): guard writes made under the lock with <see cref="LeaseLockHandle.Revision"/> in
/// a transaction (<see cref="LeaseLockHandle.StillHeld"/>), as the report job does.
/// </remarks>
internal static class LeaseLock
{
    /// <summary>
    /// Waits until this caller holds the lock <paramref name="key"/>, then returns the handle that
    /// keeps its lease alive. <paramref name="owner"/> is written as the key's value (who holds it).
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (the lease is revoked).</exception>
    public static async Task<LeaseLockHandle> AcquireAsync(ReplicatedStore store, string key, string owner, long ttlSeconds, ILogger logger, CancellationToken cancellationToken)
    {
        // The lease is kept alive while we wait, so it is still valid when the key frees up.
        var lease = await store.LeaseGrantAsync(ttlSeconds, cancellationToken: cancellationToken).ConfigureAwait(false);
        var handle = new LeaseLockHandle(store, key, owner, lease.Id, lease.TtlSeconds, logger);
        try
        {
            byte[] keyBytes = Encoding.UTF8.GetBytes(key);
            while (true)
            {
                // Create the key if nobody holds it (a missing key's create revision is 0); else read the holder.
                var attempt = await store.TxnAsync(new TxnRequest
                {
                    Compare = [new Compare { Key = keyBytes, Target = CompareTarget.Create, Result = CompareResult.Equal, CreateRevision = 0 }],
                    Success = [RequestOp.Put(new PutRequest { Key = keyBytes, Value = Encoding.UTF8.GetBytes(owner), Lease = lease.Id })],
                    Failure = [RequestOp.Range(new RangeRequest { Key = keyBytes })],
                }, cancellationToken).ConfigureAwait(false);
                if (attempt.Succeeded)
                {
                    handle.Acquired(attempt.Header.Revision);
                    SampleLog.LockAcquired(logger, owner, key, attempt.Header.Revision, lease.Id);
                    return handle;
                }

                var holders = attempt.Responses[0].ResponseRange?.Kvs;
                SampleLog.LockWaiting(logger, owner, key, holders is [var holder, ..] ? Encoding.UTF8.GetString(holder.Value.Span) : "nobody (just released)");
                await WaitForDeleteAsync(store, keyBytes, attempt.Header.Revision + 1, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            await handle.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Returns once <paramref name="key"/> is deleted at or after <paramref name="fromRevision"/>.</summary>
    private static async Task WaitForDeleteAsync(ReplicatedStore store, byte[] key, long fromRevision, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await foreach (var response in store.WatchAsync(new WatchRequest { Key = key, StartRevision = fromRevision, NoPut = true }, stop.Token).ConfigureAwait(false))
        {
            if (response.Events.Count > 0)
            {
                return;
            }
        }
    }
}
