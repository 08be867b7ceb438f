using System.Text;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// A background job that must run on one member at a time: every member campaigns for the
/// election key (<c>Election:Key</c>, a <see cref="LeaseLock"/>); the winner runs the job until it
/// loses the lease or stops (then it resigns: revoking the lease lets the next member win at once).
/// </summary>
/// <remarks>
/// The job writes <see cref="LastRunKey"/> in a transaction that holds only while this member's
/// election key is still the one it created (<see cref="LeaseLockHandle.StillHeld"/>): a leader that
/// froze and lost its lease cannot write after the next leader was elected (fencing). Its pace and
/// title come from <see cref="ReportSettings"/> through <see cref="IOptionsMonitor{TOptions}"/>, and so change live.
/// </remarks>
internal sealed class ElectedJobService(
    ReplicatedStoreService member,
    IOptions<ElectionSettings> election,
    IOptionsMonitor<ReportSettings> report,
    DemoMetrics metrics,
    ILogger<ElectedJobService> logger) : BackgroundService
{
    /// <summary>Where each run of the job writes its report (who ran it, which run, the configured title).</summary>
    public const string LastRunKey = "jobs/report/last-run";

    private static readonly TimeSpan s_retryDelay = TimeSpan.FromMilliseconds(200);
    private volatile LeaseLockHandle? _leadership;
    private long _runs;

    /// <summary>True while this member holds the election (and so runs the job).</summary>
    public bool IsLeader => _leadership is not null;

    /// <summary>Runs of the job made by this member.</summary>
    public long Runs => Interlocked.Read(ref _runs);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = election.Value;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var leadership = await LeaseLock.AcquireAsync(member.Store, settings.Key, member.MemberName, settings.LeaseTtlSeconds, logger, stoppingToken).ConfigureAwait(false);
                SampleLog.ElectionWon(logger, member.MemberName, leadership.Revision, leadership.LeaseId);
                metrics.ElectionWon(member.MemberName);
                _leadership = leadership;
                try
                {
                    await RunWhileLeadingAsync(leadership, stoppingToken).ConfigureAwait(false);
                }
                finally
                {
                    _leadership = null;
                }

                // Leaving the using block resigns: the lease is revoked and the key deleted.
                SampleLog.JobLeft(logger, member.MemberName);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                return; // the host is stopping: whatever failed no longer matters
            }
            catch (NoLeaderException)
            {
                // Not yet (or no longer) a leader in the cluster: campaign once there is one.
                await Task.Delay(s_retryDelay, stoppingToken).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                // A proposal dropped in a leader change, a lease that expired while we campaigned: campaign
                // again. (An exception escaping a BackgroundService would stop the whole host.)
                SampleLog.CampaignFailed(logger, e, member.MemberName);
                await Task.Delay(s_retryDelay, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private async Task RunWhileLeadingAsync(LeaseLockHandle leadership, CancellationToken stoppingToken)
    {
        using var tenure = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, leadership.Lost);
        try
        {
            while (!tenure.IsCancellationRequested)
            {
                if (!await RunOnceAsync(leadership, tenure.Token).ConfigureAwait(false))
                {
                    return; // fenced off: another member leads now
                }

                await Task.Delay(report.CurrentValue.IntervalMilliseconds, tenure.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (tenure.IsCancellationRequested)
        {
            // Stopping, or the lease is gone.
        }
    }

    /// <summary>One run of the job: writes the report, only if this member still holds the election key.</summary>
    private async Task<bool> RunOnceAsync(LeaseLockHandle leadership, CancellationToken cancellationToken)
    {
        long run = Runs + 1;
        string text = $"{member.MemberName} run {run}: {report.CurrentValue.Title}";
        var written = await member.Store.TxnAsync(new TxnRequest
        {
            Compare = [leadership.StillHeld()],
            Success = [RequestOp.Put(new PutRequest { Key = Encoding.UTF8.GetBytes(LastRunKey), Value = Encoding.UTF8.GetBytes(text) })],
        }, cancellationToken).ConfigureAwait(false);
        if (!written.Succeeded)
        {
            SampleLog.JobFenced(logger, member.MemberName);
            return false;
        }

        Interlocked.Increment(ref _runs);
        metrics.JobRan(member.MemberName);
        return true;
    }
}
