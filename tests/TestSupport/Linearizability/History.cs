namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Records a client history as it happens, for <see cref="LinearizabilityChecker"/>: a client
/// invokes an operation, then completes it with its output or gives up on it (timed out, member
/// crashed), which makes it indeterminate. Operations still pending at the end are indeterminate.
/// </summary>
/// <remarks>Not thread-safe: record from one thread (the simulator's) or lock around it.</remarks>
public sealed class History<TInput, TOutput>
    where TInput : notnull
    where TOutput : class
{
    private readonly List<Operation<TInput, TOutput>> _operations = [];
    private readonly Dictionary<int, int> _pendingByClient = [];

    /// <summary>Operations recorded so far, in invocation order; pending ones appear as indeterminate.</summary>
    public IReadOnlyList<Operation<TInput, TOutput>> Operations => _operations;

    /// <summary>Starts an operation of <paramref name="clientId"/> at <paramref name="ticks"/>; returns its handle.</summary>
    /// <exception cref="InvalidOperationException">The client still has an operation pending (a client runs one at a time), or time went backwards.</exception>
    public int Invoke(int clientId, long ticks, TInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_pendingByClient.TryGetValue(clientId, out int pending))
        {
            throw new InvalidOperationException($"Client {clientId} invoked an operation while operation {pending} is pending; complete it or mark it indeterminate first.");
        }

        if (_operations.Count > 0 && ticks < _operations[^1].InvokeTicks)
        {
            throw new InvalidOperationException($"Invocation at {ticks} is before the previous one at {_operations[^1].InvokeTicks}.");
        }

        _operations.Add(Operation.IndeterminateAfter<TInput, TOutput>(clientId, ticks, input));
        _pendingByClient[clientId] = _operations.Count - 1;
        return _operations.Count - 1;
    }

    /// <summary>Completes pending operation <paramref name="handle"/> at <paramref name="ticks"/> with <paramref name="output"/>.</summary>
    /// <exception cref="InvalidOperationException">The operation is not pending.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="ticks"/> is before its invocation.</exception>
    public void Complete(int handle, long ticks, TOutput output)
    {
        Operation<TInput, TOutput> op = Pending(handle);
        _operations[handle] = Operation.Completed(op.ClientId, op.InvokeTicks, ticks, op.Input, output);
        _pendingByClient.Remove(op.ClientId);
    }

    /// <summary>Gives up on pending operation <paramref name="handle"/>: its outcome stays unknown, and its client may invoke again.</summary>
    /// <exception cref="InvalidOperationException">The operation is not pending.</exception>
    public void MarkIndeterminate(int handle)
    {
        Operation<TInput, TOutput> op = Pending(handle);
        _pendingByClient.Remove(op.ClientId);
    }

    private Operation<TInput, TOutput> Pending(int handle)
    {
        if (handle < 0 || handle >= _operations.Count)
        {
            throw new InvalidOperationException($"No operation {handle}.");
        }

        Operation<TInput, TOutput> op = _operations[handle];
        if (!_pendingByClient.TryGetValue(op.ClientId, out int pending) || pending != handle)
        {
            throw new InvalidOperationException($"Operation {handle} of client {op.ClientId} is not pending.");
        }

        return op;
    }
}
