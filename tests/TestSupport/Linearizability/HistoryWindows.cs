using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Splits an etcd history at quiescent points so each window is checked alone. etcd's revisions are
/// global, so <see cref="EtcdKvModel"/> cannot partition per key, and one long history is exponential
/// to search; but at a quiescent point (see <see cref="QuiescentPoint"/>) the past is settled: every
/// operation invoked before it has completed or will never take effect, and the store's state there
/// was read. So the history is linearizable if each window is, started in the state read at its
/// start and ending in the state read at its end (its final <see cref="EtcdKvRequest.ExpectState"/>
/// operation: an end state the window cannot reach fails that window). Soundness rests on the
/// harness's quiescence: a definite operation spanning a point is refused here; an indeterminate one
/// stays in the window it was invoked in, which is right only if the cluster had applied everything
/// at the point.
/// </summary>
/// <remarks>
/// Lease expiries (<see cref="EtcdKvRequest.LeaseExpiry"/>, indeterminate) stand across windows: a
/// copy is added, invoked at the point, to every later window whose start state still holds the lease.
/// Reads at revisions before a window's start are not checkable in that window (any answer is accepted).
/// </remarks>
public static class HistoryWindows
{
    /// <summary>The client id of the expected-state operations that end the windows.</summary>
    public const int CheckpointClientId = -1;

    /// <summary>Splits <paramref name="history"/> (started in <paramref name="initial"/>) at <paramref name="points"/>: one window more than points.</summary>
    /// <exception cref="ArgumentException">The points are not in strictly increasing time, or a completed operation spans a point (the point was not quiescent).</exception>
    public static IReadOnlyList<HistoryWindow> Split(
        IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> history,
        EtcdKvState initial,
        IReadOnlyList<QuiescentPoint> points)
    {
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(initial);
        ArgumentNullException.ThrowIfNull(points);
        for (int i = 1; i < points.Count; i++)
        {
            if (points[i].Ticks <= points[i - 1].Ticks)
            {
                throw new ArgumentException($"Quiescent points must be in strictly increasing time: {points[i - 1]} then {points[i]}.", nameof(points));
            }
        }

        var windows = new List<List<Operation<EtcdKvRequest, EtcdKvResponse>>>();
        for (int i = 0; i <= points.Count; i++)
        {
            windows.Add([]);
        }

        for (int index = 0; index < history.Count; index++)
        {
            Operation<EtcdKvRequest, EtcdKvResponse> op = history[index];
            int window = WindowOf(points, op.InvokeTicks);
            if (window < points.Count && op.CompleteTicks is long complete && complete > points[window].Ticks)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"Operation #{index} of client {op.ClientId} [{op.InvokeTicks}..{complete}] {op.Input} spans the quiescent point at {points[window].Ticks}: no operation may be in flight there."), nameof(points));
            }

            windows[window].Add(op);
        }

        var result = new List<HistoryWindow>(windows.Count);
        for (int w = 0; w < windows.Count; w++)
        {
            EtcdKvState start = w == 0 ? initial : points[w - 1].State;
            List<Operation<EtcdKvRequest, EtcdKvResponse>> ops = windows[w];
            if (w > 0)
            {
                // Expiries still possible: leases alive at the start whose expiry was recorded earlier.
                long at = points[w - 1].Ticks;
                var standing = windows.Take(w).SelectMany(earlier => earlier)
                    .Where(op => op.Indeterminate && IsExpiry(op.Input, out long lease) && start.Leases.ContainsKey(lease))
                    .GroupBy(op => op.Input.Success[0].Lease)
                    .Select(group => Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(group.First().ClientId, at, group.First().Input));
                ops.InsertRange(0, standing.Where(copy => !ops.Any(op => op.Indeterminate && IsExpiry(op.Input, out long lease) && lease == copy.Input.Success[0].Lease)).ToList());
            }

            if (w < points.Count)
            {
                QuiescentPoint end = points[w];
                ops.Add(Operation.Completed(CheckpointClientId, end.Ticks, end.Ticks, EtcdKvRequest.ExpectState(end.State), new EtcdKvResponse(end.State.Revision, true, [])));
            }

            result.Add(new HistoryWindow(w, w == 0 ? long.MinValue : points[w - 1].Ticks, w < points.Count ? points[w].Ticks : null, start, ops));
        }

        return result;
    }

    /// <summary>Checks every window; the first that is not linearizable (or undecided) is returned, otherwise the last result.</summary>
    public static (HistoryWindow? Failed, LinearizabilityResult<EtcdKvRequest, EtcdKvResponse> Result) CheckAll(
        IReadOnlyList<HistoryWindow> windows,
        bool keepHistory = false,
        LinearizabilityCheckerOptions? options = null,
        long minLeaseTtlSeconds = EtcdKvModel.DefaultMinLeaseTtlSeconds)
    {
        ArgumentNullException.ThrowIfNull(windows);
        LinearizabilityResult<EtcdKvRequest, EtcdKvResponse>? last = null;
        foreach (HistoryWindow window in windows)
        {
            last = window.Check(keepHistory, options, minLeaseTtlSeconds);
            if (last.Verdict != LinearizabilityVerdict.Linearizable)
            {
                return (window, last);
            }
        }

        return (null, last ?? LinearizabilityChecker.Check(EtcdKvModel.Instance, []));
    }

    private static int WindowOf(IReadOnlyList<QuiescentPoint> points, long invokeTicks)
    {
        int window = 0;
        while (window < points.Count && points[window].Ticks < invokeTicks)
        {
            window++;
        }

        return window;
    }

    private static bool IsExpiry(EtcdKvRequest request, out long lease)
    {
        bool expiry = request.IsSingleCall && request.Success[0] is { Kind: EtcdKvOperationKind.LeaseRevoke, Expiry: true };
        lease = expiry ? request.Success[0].Lease : 0;
        return expiry;
    }
}
