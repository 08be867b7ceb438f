using System.Buffers.Binary;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The linearizable read loop of etcd's server: every <see cref="RaftNode{TResult}.ReadIndexAsync"/>
/// caller waiting when a round starts shares that round's one <see cref="RawNode.ReadIndex"/>
/// request; callers arriving meanwhile wait for the next round, never the running one (its read
/// index may have been fixed before they arrived). A confirmed round completes once the state
/// machine has applied its index. A round unanswered after the retry interval is asked again under
/// a new id (the request, or its answer, may have been lost, or no leader was known: the core drops
/// it silently); callers fail at their deadline.
/// </summary>
/// <remarks>
/// <para>Callers join from any thread (<see cref="TryJoin"/>, under a small lock of its own: a
/// read posts nothing to the loop except to wake it when it may be idle). Callers joining in the
/// same tick share one <see cref="ReadGroup"/> — one deadline, one task — so a read allocates
/// nothing of its own and a round's callers are released by one work item per group.</para>
/// <para>A round does not start while a release pass is queued or runs (the continuations of the callers a round
/// released, run one after another on one thread): the readers it releases typically read again at
/// once, and would otherwise trickle into rounds of one or two while the pass goes on — a round
/// costs a heartbeat exchange with every voter, several loop turns and Readies, far more than a
/// read. The pass's end wakes the loop, so the next round takes them all. A pass that runs longer
/// than <see cref="PassHoldTicks"/> (a continuation that blocks) holds rounds back no longer.</para>
/// <para>Everything else (starting, answering, completing and expiring rounds) is owned by the loop.</para>
/// <para>Invariant: a group is in exactly one of: waiting (not yet taken by a round), the running
/// round, a confirmed round, or released.</para>
/// </remarks>
internal sealed class ReadIndexRounds
{
    /// <summary>How many ticks queued or running release passes may hold the next round back.</summary>
    public const long PassHoldTicks = 2;

    private readonly TaskScheduler _scheduler;
    private readonly Action _wakeLoop;

    // Release passes queued or running now (any thread), and the tick at which the count last left zero.
    // Counted from the queueing, not from the start: between the two, the loop would otherwise start
    // the next round for the one or two callers that joined meanwhile, and the callers the pass is
    // about to release would miss it — rounds of one caller each, back to back, every caller cycling
    // through the thread pool's queue on its own (measured: 82% of rounds carried one caller).
    private int _passesPending;
    private long _passesBusySinceTick;

    // Shared with callers: under _gate.
    private readonly Lock _gate = new();
    private List<ReadGroup> _waiting = [];
    private ReadGroup? _joining;
    private int _waitingCount;
    private bool _loopNotified;
    private bool _closed;
    private Exception? _closedError;

    // The loop's tick as of its last expiry pass, read by joining callers for their deadline.
    private long _tick;

    // Owned by the loop.
    private readonly List<Round> _confirmed = [];
    private Round? _current;

    /// <param name="scheduler">Where release passes run (never inline on the loop).</param>
    /// <param name="wakeLoop">Posts an input to the loop (any thread); used when a pass ends with callers waiting.</param>
    public ReadIndexRounds(TaskScheduler scheduler, Action wakeLoop)
    {
        _scheduler = scheduler;
        _wakeLoop = wakeLoop;
    }

    /// <summary>
    /// Joins the group of callers waiting for the next round (any thread). False once
    /// <see cref="FailAll"/> ran (the node stopped). <paramref name="wakeLoop"/> is true when the
    /// loop may not look at the waiting callers without a new input: the caller must post one.
    /// </summary>
    public bool TryJoin(long timeoutTicks, out Task task, out bool wakeLoop)
    {
        lock (_gate)
        {
            // Read under the gate: the groups' deadlines never decrease along _waiting.
            long deadline = Volatile.Read(ref _tick) + timeoutTicks;
            if (_closed)
            {
                task = Task.FromException(_closedError!);
                wakeLoop = false;
                return false;
            }

            var group = _joining;
            if (group is null || group.DeadlineTick != deadline)
            {
                group = _joining = new ReadGroup(deadline, this);
                _waiting.Add(group);
                Volatile.Write(ref _waitingCount, _waiting.Count);
            }

            group.AddCaller();

            // While a pass is queued or runs, its end wakes the loop (OnPassEnded).
            wakeLoop = !_loopNotified && Volatile.Read(ref _passesPending) == 0;
            _loopNotified |= wakeLoop;
            task = group.Task;
            return true;
        }
    }

    /// <summary>
    /// Starts a round for the waiting callers if none runs and some wait; returns its request
    /// context, or null. <paramref name="nextRequestId"/> (the node's request id counter) is
    /// advanced only when a round starts.
    /// </summary>
    public byte[]? TryStartRound(ref ulong nextRequestId, long tick)
    {
        if (_current is not null || Volatile.Read(ref _waitingCount) == 0
            || (Volatile.Read(ref _passesPending) > 0 && tick - Volatile.Read(ref _passesBusySinceTick) < PassHoldTicks))
        {
            // A round runs: the loop looks again when it ends (answered, retried away or expired).
            // A pass is queued or runs: its end wakes the loop (or a later tick lets the round start anyway).
            // None waits: a caller joining from now on finds _loopNotified as the last look left it;
            // if it is set, a post made since that look is still to be taken, or its group would
            // count here.
            return null;
        }

        List<ReadGroup> groups;
        lock (_gate)
        {
            _loopNotified = false;
            if (_waiting.Count == 0)
            {
                return null;
            }

            groups = _waiting;
            _waiting = [];
            _joining = null;
            Volatile.Write(ref _waitingCount, 0);
        }

        int readers = 0;
        foreach (var group in groups)
        {
            readers += group.Callers;
        }

        LastRoundReaders = readers;
        var id = Interlocked.Increment(ref nextRequestId);
        _current = new Round(groups, id, tick);
        return Context(id);
    }

    /// <summary>Loop-owned: how many callers the round <see cref="TryStartRound"/> last started carries.</summary>
    public int LastRoundReaders { get; private set; }

    /// <summary>A release pass is queued (the loop, or a thread failing the node): rounds wait for it to end.</summary>
    public void OnPassQueued()
    {
        if (Interlocked.Increment(ref _passesPending) == 1)
        {
            Volatile.Write(ref _passesBusySinceTick, Volatile.Read(ref _tick));
        }
    }

    /// <summary>A release pass ended (any thread): the last one wakes the loop for the callers that joined meanwhile.</summary>
    public void OnPassEnded()
    {
        if (Interlocked.Decrement(ref _passesPending) != 0)
        {
            return;
        }

        // Whatever _loopNotified says: the loop may have looked during the pass and held back.
        bool wake;
        lock (_gate)
        {
            wake = _waiting.Count > 0 && !_closed;
            _loopNotified |= wake;
        }

        if (wake)
        {
            _wakeLoop();
        }
    }

    /// <summary>Renames the running round if it waited <paramref name="retryTicks"/> unanswered; returns the new context to ask with, or null.</summary>
    public byte[]? RetryIfDue(ref ulong nextRequestId, long tick, long retryTicks)
    {
        if (_current is null || tick - _current.StartedTick < retryTicks)
        {
            return null;
        }

        var id = Interlocked.Increment(ref nextRequestId);
        _current = _current with { Id = id, StartedTick = tick };
        return Context(id);
    }

    /// <summary>An answer from the core; an answer to an abandoned (retried) round is ignored.</summary>
    public void OnReadState(ReadState state)
    {
        if (_current is null || state.RequestContext.Length != 8
            || BinaryPrimitives.ReadUInt64LittleEndian(state.RequestContext.Span) != _current.Id)
        {
            return;
        }

        _confirmed.Add(_current with { ReadIndex = state.Index });
        _current = null;
    }

    /// <summary>Whether a confirmed round waits for the state machine to apply its read index (loop-owned).</summary>
    public bool HasConfirmedRounds => _confirmed.Count > 0;

    /// <summary>Releases the callers of every confirmed round whose read index is applied.</summary>
    public void CompleteUpTo(ulong appliedIndex)
    {
        for (var i = _confirmed.Count - 1; i >= 0; i--)
        {
            if (_confirmed[i].ReadIndex <= appliedIndex)
            {
                foreach (var group in _confirmed[i].Groups)
                {
                    group.Release(null, _scheduler);
                }

                _confirmed.RemoveAt(i);
            }
        }
    }

    /// <summary>
    /// Once per tick: records the tick (for the deadlines of callers joining next) and fails every
    /// group whose deadline passed with the error <paramref name="timedOut"/> builds. A round left
    /// with no callers is dropped.
    /// </summary>
    public void Expire(long tick, Func<Exception> timedOut)
    {
        Volatile.Write(ref _tick, tick);
        Exception? error = null;
        Exception Error() => error ??= timedOut();

        lock (_gate)
        {
            if (_waiting.Count > 0 && _waiting[0].DeadlineTick <= tick)
            {
                // Deadlines never decrease along _waiting (TryJoin): the expired groups are at the front.
                int expired = 0;
                while (expired < _waiting.Count && _waiting[expired].DeadlineTick <= tick)
                {
                    _waiting[expired].Release(Error(), _scheduler);
                    expired++;
                }

                if (_joining is not null && _joining.DeadlineTick <= tick)
                {
                    _joining = null;
                }

                _waiting.RemoveRange(0, expired);
                Volatile.Write(ref _waitingCount, _waiting.Count);
            }
        }

        if (_current is not null && Sweep(_current.Groups, tick, Error))
        {
            _current = null;
        }

        for (var i = _confirmed.Count - 1; i >= 0; i--)
        {
            if (Sweep(_confirmed[i].Groups, tick, Error))
            {
                _confirmed.RemoveAt(i);
            }
        }
    }

    /// <summary>Fails every caller, waiting or in a round, with <paramref name="error"/>, and every later one (the node stopped).</summary>
    public void FailAll(Exception error)
    {
        List<ReadGroup> waiting;
        lock (_gate)
        {
            _closed = true;
            _closedError = error;
            waiting = _waiting;
            _waiting = [];
            _joining = null;
            Volatile.Write(ref _waitingCount, 0);
        }

        foreach (var group in waiting.Concat(_current?.Groups ?? []).Concat(_confirmed.SelectMany(r => r.Groups)))
        {
            group.Release(error, _scheduler);
        }

        _current = null;
        _confirmed.Clear();
    }

    // Fails the groups whose deadline passed; true when none is left.
    private bool Sweep(List<ReadGroup> groups, long tick, Func<Exception> error)
    {
        groups.RemoveAll(group =>
        {
            if (tick < group.DeadlineTick)
            {
                return false;
            }

            group.Release(error(), _scheduler);
            return true;
        });
        return groups.Count == 0;
    }

    private static byte[] Context(ulong roundId)
    {
        var context = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(context, roundId);
        return context;
    }

    private sealed record Round(List<ReadGroup> Groups, ulong Id, long StartedTick)
    {
        public ulong ReadIndex { get; init; }
    }
}
