using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// The periodic cross-member hash check (etcd's corruption check), over the log since the members
/// have no other channel (docs/architecture.md, "Hash check"): every
/// <see cref="ReplicatedStoreOptions.HashCheckInterval"/> the leader proposes "check at revision R"
/// (its current revision, which every member has reached once it applies the entry); each member
/// that applies it computes <see cref="MvccStore.HashKV"/>(R) off the apply path and proposes its
/// report; every member compares the reports it applies, check by check, among reports at the same
/// compact revision (a compaction between two members' hashes changes the hash legitimately). A
/// disagreement raises <see cref="StoreAlarms.Corrupt"/> on every member that applies the
/// reports: logged at Error, counted on the meter <see cref="ReplicatedStoreMetrics.MeterName"/>,
/// shown in <see cref="Status"/>, and from then on writes fail with <see cref="MvccError.Corrupt"/>.
/// </content>
/// <remarks>
/// The reports and the alarm are in memory, not replicated state: a restarted member forgets them
/// (as etcd clears its corrupt alarm only by operator action, ours clears by restart; the next
/// check raises it again if the stores still differ).
/// </remarks>
public sealed partial class ReplicatedStore
{
    /// <summary>Checks whose reports are kept for comparison; older ones are dropped (a late report for one is ignored).</summary>
    internal const int HashChecksKept = 32;

    private readonly object _hashGate = new();
    private readonly SortedDictionary<ulong, HashCheck> _hashChecks = [];

    /// <summary>
    /// etcd's <c>HashKV</c> on this member's store: a CRC-32C over the history up to
    /// <paramref name="revision"/> (0: the current one) that compaction keeps, equal on every member
    /// that applied the same log, whatever its physical compaction progress. Local (not linearizable).
    /// </summary>
    /// <exception cref="RevisionCompactedException"><paramref name="revision"/> is positive and at or below the compact revision.</exception>
    /// <exception cref="FutureRevisionException"><paramref name="revision"/> is above this member's revision.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="revision"/> is negative.</exception>
    /// <exception cref="OperationCanceledException">Cancelled before it began.</exception>
    public ValueTask<HashKVResponse> HashKVAsync(long revision = 0, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var response = Mvcc.HashKV(revision);
        return ValueTask.FromResult(new HashKVResponse { Header = Stamp(response.Header), Hash = response.Hash, CompactRevision = response.CompactRevision, HashRevision = response.HashRevision });
    }

    /// <summary>
    /// Proposes a hash check at this member's current revision (what the leader's periodic loop does;
    /// for tests, from any member) and returns the log index it was applied at, which names the check.
    /// </summary>
    internal async ValueTask<ulong> ProposeHashCheckAsync(CancellationToken cancellationToken = default)
    {
        var result = await Node.ProposeAsync(HashCheckCommands.EncodeStart(Mvcc.Revision), cancellationToken).ConfigureAwait(ResumeOnScheduler);
        return Unwrap<HashCheckStarted>(result).Index;
    }

    /// <summary>
    /// Completes with the reports of the check at <paramref name="checkIndex"/> once this member has
    /// applied at least <paramref name="count"/> of them (for tests; bounded by the caller's wait).
    /// </summary>
    internal Task<IReadOnlyList<HashReport>> HashReportsAsync(ulong checkIndex, int count)
    {
        lock (_hashGate)
        {
            var check = CheckUnsynchronized(checkIndex);
            if (check.Reports.Count >= count)
            {
                return Task.FromResult<IReadOnlyList<HashReport>>([.. check.Reports.Values]);
            }

            var waiter = new TaskCompletionSource<IReadOnlyList<HashReport>>(TaskCreationOptions.RunContinuationsAsynchronously);
            check.Waiters.Add((count, waiter));
            return waiter.Task;
        }
    }

    /// <summary>Completes when this member raises the corruption alarm (for tests).</summary>
    internal Task CorruptAlarmRaised => _corruptAlarm.Task;

    private readonly TaskCompletionSource _corruptAlarm = new(TaskCreationOptions.RunContinuationsAsynchronously);

    partial void StartHashCheckWork()
    {
        if (_options.HashCheckInterval > TimeSpan.Zero)
        {
            RunInBackground(CheckHashesPeriodicallyAsync);
        }
    }

    partial void ApplyHashCheckCommand(MvccStore store, CommandKind kind, CommittedCommand command, ref ValueTask<object?>? result)
    {
        switch (kind)
        {
            case CommandKind.HashCheckStart:
                long revision = HashCheckCommands.DecodeStart(command.Data.Span);

                // The hash is computed after the writer has applied every entry before this one
                // (requests are handled in order; this one completes after them), off the apply path.
                var applied = store.AdvanceConsistentIndexAsync(0).AsTask();
                ulong checkIndex = command.Index;
                RunInBackground(() => ReportHashAsync(store, checkIndex, revision, applied));
                result = Answer(new HashCheckStarted(checkIndex));
                break;
            case CommandKind.HashCheckReport:
                CompareReport(HashCheckCommands.DecodeReport(command.Data.Span));
                result = Answer(null);
                break;
        }
    }

    /// <summary>A result known at once, as the apply path takes it (awaited once there).</summary>
    private static ValueTask<object?>? Answer(object? value) => new ValueTask<object?>(value);

    /// <summary>Computes this member's hash for the check and proposes it; a check that cannot be answered (compacted meanwhile, no leader) is skipped.</summary>
    private async Task ReportHashAsync(MvccStore store, ulong checkIndex, long revision, Task applied)
    {
        try
        {
            await applied.ConfigureAwait(ResumeOnScheduler);
            var hash = store.HashKV(revision);
            var report = new HashReport(checkIndex, MemberId, revision, hash.CompactRevision, hash.Hash);
            ThrowIfRefused(await Node.ProposeAsync(HashCheckCommands.EncodeReport(report), Stopping).ConfigureAwait(ResumeOnScheduler));
        }
        catch (Exception e) when (e is RevisionCompactedException or FutureRevisionException or ObjectDisposedException or Storage.StorageFaultedException
            or NoLeaderException or ProposalDroppedException or NodeStoppedException or OperationCanceledException or TimeoutException)
        {
            ReplicatedStoreLog.HashSkipped(_logger, e, MemberId, checkIndex, revision);
        }
    }

    /// <summary>Records an applied report and compares it with the check's others at the same compact revision.</summary>
    private void CompareReport(HashReport report)
    {
        string? mismatch = null;
        List<(int Count, TaskCompletionSource<IReadOnlyList<HashReport>> Waiter)> ready = [];
        List<HashReport> reports;
        lock (_hashGate)
        {
            if (_hashChecks.Count > 0 && report.CheckIndex < _hashChecks.Keys.First() && _hashChecks.Count >= HashChecksKept)
            {
                return; // a late report for a check already dropped
            }

            var check = CheckUnsynchronized(report.CheckIndex);
            check.Reports[report.MemberId] = report;
            var peers = check.Reports.Values.Where(r => r.CompactRevision == report.CompactRevision && r.Revision == report.Revision).ToList();
            if (peers.Count >= 2)
            {
                ReplicatedStoreMetrics.HashChecked(MemberId);
                if (peers.Select(r => r.Hash).Distinct().Count() > 1 && !check.Mismatched)
                {
                    check.Mismatched = true;
                    mismatch = string.Join(", ", peers.OrderBy(r => r.MemberId).Select(r => $"member {r.MemberId}: {r.Hash:x8}"));
                }
            }

            reports = [.. check.Reports.Values];
            check.Waiters.RemoveAll(w =>
            {
                if (reports.Count < w.Count)
                {
                    return false;
                }

                ready.Add(w);
                return true;
            });
        }

        if (mismatch is not null)
        {
            ReplicatedStoreLog.HashMismatch(_logger, MemberId, report.CheckIndex, report.Revision, report.CompactRevision, mismatch);
            ReplicatedStoreMetrics.HashMismatch(MemberId);
            RaiseAlarm(StoreAlarms.Corrupt);
            _corruptAlarm.TrySetResult();
        }

        foreach (var (_, waiter) in ready)
        {
            waiter.TrySetResult(reports);
        }
    }

    /// <summary>The check at <paramref name="checkIndex"/>, created if new; the oldest is dropped beyond <see cref="HashChecksKept"/>.</summary>
    private HashCheck CheckUnsynchronized(ulong checkIndex)
    {
        if (!_hashChecks.TryGetValue(checkIndex, out var check))
        {
            check = new HashCheck();
            _hashChecks.Add(checkIndex, check);
            while (_hashChecks.Count > HashChecksKept)
            {
                var oldest = _hashChecks.First();
                _hashChecks.Remove(oldest.Key);
                foreach (var (_, waiter) in oldest.Value.Waiters)
                {
                    waiter.TrySetException(new InvalidOperationException($"Hash check {oldest.Key} was dropped before its reports arrived."));
                }
            }
        }

        return check;
    }

    /// <summary>The leader's loop: every <see cref="ReplicatedStoreOptions.HashCheckInterval"/>, while this member leads, propose a check.</summary>
    private async Task CheckHashesPeriodicallyAsync()
    {
        using var timer = new PeriodicTimer(_options.HashCheckInterval, Clock);
        try
        {
            while (await timer.WaitForNextTickAsync(Stopping).ConfigureAwait(ResumeOnScheduler))
            {
                if (Node.Status.LeaderId != MemberId)
                {
                    continue;
                }

                try
                {
                    await ProposeHashCheckAsync(Stopping).ConfigureAwait(ResumeOnScheduler);
                }
                catch (Exception e) when (e is NoLeaderException or ProposalDroppedException or TimeoutException)
                {
                    if (_logger.IsEnabled(LogLevel.Debug))
                    {
                        ReplicatedStoreLog.HashSkipped(_logger, e, MemberId, 0, Mvcc.Revision);
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or NodeStoppedException)
        {
            // Stopping.
        }
    }

    /// <summary>What applying a check's start answers its proposer: the log index that names the check.</summary>
    private sealed record HashCheckStarted(ulong Index);

    /// <summary>One check's reports by member, whether it already raised the alarm, and who waits for its reports.</summary>
    private sealed class HashCheck
    {
        public Dictionary<ulong, HashReport> Reports { get; } = [];

        public bool Mismatched { get; set; }

        public List<(int Count, TaskCompletionSource<IReadOnlyList<HashReport>> Waiter)> Waiters { get; } = [];
    }
}
