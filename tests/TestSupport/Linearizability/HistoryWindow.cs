using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// One window of a history split at quiescent points (<see cref="HistoryWindows.Split"/>): the state it
/// starts from, its operations and, unless it is the last, a final
/// <see cref="EtcdKvRequest.ExpectState"/> operation that pins the state it must end in (the next
/// window's start). Immutable.
/// </summary>
public sealed class HistoryWindow
{
    internal HistoryWindow(int number, long fromTicks, long? toTicks, EtcdKvState startState, IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> operations)
    {
        Number = number;
        FromTicks = fromTicks;
        ToTicks = toTicks;
        StartState = startState;
        Operations = operations;
    }

    /// <summary>The window's position, from 0.</summary>
    public int Number { get; }

    /// <summary>The quiescent point it starts at (long.MinValue for the first).</summary>
    public long FromTicks { get; }

    /// <summary>The quiescent point it ends at; null for the last window.</summary>
    public long? ToTicks { get; }

    /// <summary>The state at <see cref="FromTicks"/>.</summary>
    public EtcdKvState StartState { get; }

    /// <summary>Its operations, in invocation order, the final expected-state operation included.</summary>
    public IReadOnlyList<Operation<EtcdKvRequest, EtcdKvResponse>> Operations { get; }

    /// <summary>Checks this window alone against <see cref="EtcdKvModel"/> started in <see cref="StartState"/>.</summary>
    /// <param name="keepHistory">Check reads at past revisions (those below the window's start are not checkable and accepted).</param>
    /// <param name="options">The checker's bounds.</param>
    /// <param name="minLeaseTtlSeconds">The store's minimum lease TTL.</param>
    public LinearizabilityResult<EtcdKvRequest, EtcdKvResponse> Check(bool keepHistory = false, LinearizabilityCheckerOptions? options = null, long minLeaseTtlSeconds = EtcdKvModel.DefaultMinLeaseTtlSeconds) =>
        LinearizabilityChecker.Check(new EtcdKvModel(StartState, keepHistory, minLeaseTtlSeconds), Operations, options);

    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"window {Number} [{(FromTicks == long.MinValue ? "start" : FromTicks.ToString(CultureInfo.InvariantCulture))}..{(ToTicks is long to ? to.ToString(CultureInfo.InvariantCulture) : "end")}] from {StartState}, {Operations.Count} operations");
}
