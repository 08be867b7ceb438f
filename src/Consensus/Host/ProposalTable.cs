namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// A node's proposals waiting for their outcome, by request id: added by callers
/// (<see cref="RaftNode{TResult}.ProposeAsync"/>), removed by whoever decides the outcome (the
/// applier, the loop, a canceller, the stop), read by the loop.
/// </summary>
/// <remarks>
/// A dictionary under a lock rather than a <see cref="System.Collections.Concurrent.ConcurrentDictionary{TKey, TValue}"/>:
/// that one allocates a node object per added entry (~50–80 B per replicated put, one of the objects
/// every collection pays for: docs/benchmarks.md, "Replicated puts, session 13"); a
/// <see cref="Dictionary{TKey, TValue}"/> reuses its freed slots, so a steady flow of proposals
/// allocates nothing here. Every hold of the lock is a few dictionary operations, or one copy of
/// the values for the loop's once-a-tick scan (<see cref="CopyTo"/>), never a call out.
/// Thread-safe.
/// </remarks>
internal sealed class ProposalTable<TResult>
{
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, PendingProposal<TResult>> _byRequestId = [];

    /// <summary>Adds <paramref name="pending"/> under its request id (unique: ids are never reused on a node).</summary>
    public void Add(PendingProposal<TResult> pending)
    {
        lock (_lock)
        {
            _byRequestId.Add(pending.RequestId, pending);
        }
    }

    /// <summary>Removes the proposal with <paramref name="requestId"/>; false when there is none (its outcome was decided already).</summary>
    public bool TryRemove(ulong requestId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PendingProposal<TResult>? pending)
    {
        lock (_lock)
        {
            return _byRequestId.Remove(requestId, out pending);
        }
    }

    /// <summary>The proposal with <paramref name="requestId"/>, if it still waits.</summary>
    public bool TryGetValue(ulong requestId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out PendingProposal<TResult>? pending)
    {
        lock (_lock)
        {
            return _byRequestId.TryGetValue(requestId, out pending);
        }
    }

    /// <summary>
    /// Replaces the contents of <paramref name="into"/> with the proposals waiting now, each with the
    /// request id it waits under (a copy, so the caller may remove while it walks them, outside the
    /// lock). Act on one only through its id (<see cref="TryRemove"/>): a proposal answered since the
    /// copy may already be reused by a later call under another id (<see cref="PendingProposal{TResult}"/>'s pooling).
    /// </summary>
    public void CopyTo(List<(ulong RequestId, PendingProposal<TResult> Pending)> into)
    {
        into.Clear();
        lock (_lock)
        {
            into.EnsureCapacity(_byRequestId.Count);
            foreach (var (requestId, pending) in _byRequestId)
            {
                into.Add((requestId, pending));
            }
        }
    }

    /// <summary>
    /// Gives every waiting proposal without a deadline the deadline <paramref name="deadlineTick"/>;
    /// under the lock, so only proposals still waiting are touched (not a reused one). Loop only.
    /// </summary>
    public void SetDeadlineWhereNone(long deadlineTick)
    {
        lock (_lock)
        {
            foreach (var pending in _byRequestId.Values)
            {
                if (pending.DeadlineTick == 0)
                {
                    pending.DeadlineTick = deadlineTick;
                }
            }
        }
    }
}
