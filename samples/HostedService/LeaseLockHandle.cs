using System.Text;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// A lease lock while it is held (see <see cref="LeaseLock"/>): renews the lease every third of its
/// TTL, signals <see cref="Lost"/> when the lease is gone, and releases the lock by revoking the
/// lease when disposed (which deletes the key in the same revision).
/// </summary>
internal sealed class LeaseLockHandle : IAsyncDisposable
{
    private readonly ReplicatedStore _store;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stopRenewing = new();
    private readonly Task _renewing;

    internal LeaseLockHandle(ReplicatedStore store, string key, string owner, long leaseId, long ttlSeconds, ILogger logger)
    {
        _store = store;
        _logger = logger;
        Key = key;
        Owner = owner;
        LeaseId = leaseId;
        TtlSeconds = ttlSeconds;
        _renewing = RenewAsync();
    }

    /// <summary>The lock's key.</summary>
    public string Key { get; }

    /// <summary>Who holds it (the key's value).</summary>
    public string Owner { get; }

    /// <summary>The lease the key is attached to.</summary>
    public long LeaseId { get; }

    /// <summary>The lease's TTL as granted.</summary>
    public long TtlSeconds { get; }

    /// <summary>The revision that created the key: the fencing token of this tenure.</summary>
    public long Revision { get; private set; }

    /// <summary>Cancelled when the lease is found gone (expired or revoked): the lock is no longer held.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>
    /// A compare that holds only while this tenure lasts (the key still has the revision that
    /// created it): put it in a transaction to make a write conditional on holding the lock.
    /// </summary>
    public Compare StillHeld() => new() { Key = Encoding.UTF8.GetBytes(Key), Target = CompareTarget.Create, Result = CompareResult.Equal, CreateRevision = Revision };

    /// <summary>
    /// Stops renewing the lease without releasing it: what a frozen or cut-off holder looks like to
    /// the cluster. The leader expires the lease after its TTL and the key is deleted. (The demo uses this.)
    /// </summary>
    public void StopRenewing() => _stopRenewing.Cancel();

    internal void Acquired(long revision) => Revision = revision;

    /// <summary>Stops renewing and revokes the lease (releasing the lock), unless it is already gone.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stopRenewing.CancelAsync().ConfigureAwait(false);
        await _renewing.ConfigureAwait(false);
        try
        {
            await _store.LeaseRevokeAsync(LeaseId).ConfigureAwait(false);
        }
        catch (MvccException e) when (e.Error == MvccError.LeaseNotFound)
        {
            // Already expired or revoked: nothing to release.
        }
        catch (Exception e) when (e is ObjectDisposedException or EmbeddedRaft.Consensus.Host.NoLeaderException or EmbeddedRaft.Consensus.ProposalDroppedException)
        {
            // The member is stopping or cut off: the lease expires on its own.
            SampleLog.LeaseRevokeFailed(_logger, Owner, LeaseId, Key, e.Message, TtlSeconds);
        }

        await _lost.CancelAsync().ConfigureAwait(false);
        _lost.Dispose();
        _stopRenewing.Dispose();
    }

    private async Task RenewAsync()
    {
        var every = TimeSpan.FromSeconds(TtlSeconds / 3.0);
        var lastRenewed = DateTime.UtcNow;
        while (true)
        {
            try
            {
                await Task.Delay(every, _stopRenewing.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                var renewed = await _store.LeaseKeepAliveAsync(LeaseId, _stopRenewing.Token).ConfigureAwait(false);
                if (renewed.TtlSeconds <= 0)
                {
                    break;
                }

                lastRenewed = DateTime.UtcNow;
            }
            catch (OperationCanceledException) when (_stopRenewing.IsCancellationRequested)
            {
                return;
            }
            catch (MvccException e) when (e.Error == MvccError.LeaseNotFound)
            {
                break;
            }
            catch (Exception e) when (DateTime.UtcNow - lastRenewed < TimeSpan.FromSeconds(TtlSeconds))
            {
                // No leader for a moment: keep trying while the lease may still be alive.
                SampleLog.LeaseRenewalFailed(_logger, Owner, LeaseId, e.Message);
            }
            catch (Exception)
            {
                break; // unrenewed for a whole TTL: assume it expired
            }
        }

        SampleLog.LockLost(_logger, Owner, Key, LeaseId);
        await _lost.CancelAsync().ConfigureAwait(false);
    }
}
