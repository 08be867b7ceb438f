using System.Buffers.Binary;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The linearizable read loop of etcd's server, on the node's loop: every
/// <see cref="RaftNode{TResult}.ReadIndexAsync"/> caller waiting when a round starts shares that
/// round's one <see cref="RawNode.ReadIndex"/> request; callers arriving meanwhile wait for the next
/// round. A confirmed round completes once the state machine has applied its index. A round
/// unanswered after the retry interval is asked again under a new id (the request, or its answer,
/// may have been lost, or no leader was known: the core drops it silently); each caller fails at
/// its own deadline.
/// </summary>
/// <remarks>Not thread-safe: owned by the loop.</remarks>
internal sealed class ReadIndexRounds
{
    private readonly List<ReadWaiter> _next = [];
    private readonly List<Round> _confirmed = [];
    private Round? _current;

    public int WaitingCount => _next.Count + (_current?.Waiters.Count ?? 0) + _confirmed.Sum(r => r.Waiters.Count);

    public void Add(ReadWaiter waiter) => _next.Add(waiter);

    /// <summary>Starts a round for the waiting callers if none runs; returns its request context, or null.</summary>
    public byte[]? TryStartRound(ulong roundId, long tick)
    {
        if (_current is not null || _next.Count == 0)
        {
            return null;
        }

        _current = new Round([.. _next], roundId, tick);
        _next.Clear();
        return Context(roundId);
    }

    /// <summary>Renames the running round if it waited <paramref name="retryTicks"/> unanswered; returns the new context to ask with, or null.</summary>
    public byte[]? RetryIfDue(ulong newRoundId, long tick, long retryTicks)
    {
        if (_current is null || tick - _current.StartedTick < retryTicks)
        {
            return null;
        }

        _current = _current with { Id = newRoundId, StartedTick = tick };
        return Context(newRoundId);
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

    /// <summary>Completes every confirmed round whose read index is applied.</summary>
    public void CompleteUpTo(ulong appliedIndex)
    {
        for (var i = _confirmed.Count - 1; i >= 0; i--)
        {
            if (_confirmed[i].ReadIndex <= appliedIndex)
            {
                foreach (var w in _confirmed[i].Waiters)
                {
                    w.Complete();
                }

                _confirmed.RemoveAt(i);
            }
        }
    }

    /// <summary>Fails every caller whose deadline passed with the error <paramref name="timedOut"/> builds; drops callers that went away.</summary>
    public void Expire(long tick, Func<Exception> timedOut)
    {
        Sweep(_next, tick, timedOut);
        if (_current is not null)
        {
            Sweep(_current.Waiters, tick, timedOut);
            if (_current.Waiters.Count == 0)
            {
                _current = null;
            }
        }

        foreach (var round in _confirmed)
        {
            Sweep(round.Waiters, tick, timedOut);
        }

        _confirmed.RemoveAll(r => r.Waiters.Count == 0);
    }

    public void FailAll(Exception error)
    {
        foreach (var w in _next.Concat(_current?.Waiters ?? []).Concat(_confirmed.SelectMany(r => r.Waiters)))
        {
            w.Fail(error);
        }

        _next.Clear();
        _current = null;
        _confirmed.Clear();
    }

    private static void Sweep(List<ReadWaiter> waiters, long tick, Func<Exception> timedOut)
    {
        waiters.RemoveAll(w =>
        {
            if (w.IsDone)
            {
                return true;
            }

            if (tick >= w.DeadlineTick)
            {
                w.Fail(timedOut());
                return true;
            }

            return false;
        });
    }

    private static byte[] Context(ulong roundId)
    {
        var context = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(context, roundId);
        return context;
    }

    private sealed record Round(List<ReadWaiter> Waiters, ulong Id, long StartedTick)
    {
        public ulong ReadIndex { get; init; }
    }
}
