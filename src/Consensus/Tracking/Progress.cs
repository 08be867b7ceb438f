namespace EmbeddedRaft.Consensus.Tracking;

/// <summary>
/// A leader's view of one follower (etcd's tracker.Progress): what it has matched, what to send
/// next, and the flow-control state.
/// Invariants: <c>Match &lt; Next</c>; in <see cref="ProgressState.Snapshot"/>,
/// <see cref="PendingSnapshot"/> is the index of the snapshot in flight (or 0 if it failed).
/// </summary>
internal sealed class Progress
{
    public Progress(ulong next, int maxInflight, ulong maxInflightBytes, bool isLearner)
    {
        Next = next;
        Inflights = new Inflights(maxInflight, maxInflightBytes);
        IsLearner = isLearner;
    }

    /// <summary>The highest index known to be replicated on the follower.</summary>
    public ulong Match { get; set; }

    /// <summary>The next index to send.</summary>
    public ulong Next { get; set; }

    public ProgressState State { get; private set; }

    /// <summary>
    /// The highest commit index sent to the follower (in appends or heartbeats). Lets the leader
    /// tell a follower about a newer commit index promptly without resending on every ack.
    /// </summary>
    public ulong SentCommit { get; set; }

    public ulong PendingSnapshot { get; set; }

    /// <summary>Heard from since the last check-quorum round (Raft thesis §6.2).</summary>
    public bool RecentActive { get; set; }

    /// <summary>
    /// In <see cref="ProgressState.Probe"/>: an append was sent this heartbeat interval.
    /// In <see cref="ProgressState.Replicate"/>: the inflight window is full.
    /// Cleared by any response from the follower.
    /// </summary>
    public bool MsgAppFlowPaused { get; set; }

    public Inflights Inflights { get; }

    public bool IsLearner { get; set; }

    /// <summary>Whether the leader should hold back appends to this follower.</summary>
    public bool IsPaused => State switch
    {
        ProgressState.Probe => MsgAppFlowPaused,
        ProgressState.Replicate => MsgAppFlowPaused,
        _ => true,
    };

    private void ResetState(ProgressState state)
    {
        MsgAppFlowPaused = false;
        PendingSnapshot = 0;
        State = state;
        Inflights.Reset();
    }

    public void BecomeProbe()
    {
        // After a snapshot the follower has at least the snapshot's entries (if it applied it);
        // probing from just past it avoids resending what the snapshot covered.
        if (State == ProgressState.Snapshot)
        {
            var pending = PendingSnapshot;
            ResetState(ProgressState.Probe);
            Next = Math.Max(Match + 1, pending + 1);
        }
        else
        {
            ResetState(ProgressState.Probe);
            Next = Match + 1;
        }

        SentCommit = Math.Min(SentCommit, Next - 1);
    }

    public void BecomeReplicate()
    {
        ResetState(ProgressState.Replicate);
        Next = Match + 1;
    }

    public void BecomeSnapshot(ulong snapshotIndex)
    {
        ResetState(ProgressState.Snapshot);
        PendingSnapshot = snapshotIndex;
        Next = snapshotIndex + 1;
        SentCommit = snapshotIndex;
    }

    /// <summary>
    /// Whether sending <paramref name="commit"/> could advance the follower's commit index: it is
    /// newer than what was sent, and what was sent did not already cover everything the follower
    /// is known to be getting (up to <c>Next - 1</c>).
    /// </summary>
    public bool CanBumpCommit(ulong commit) => commit > SentCommit && SentCommit < Next - 1;

    /// <summary>Account for an append of <paramref name="entries"/> entries just sent.</summary>
    public void SentEntries(int entries, ulong bytes)
    {
        switch (State)
        {
            case ProgressState.Replicate:
                if (entries > 0)
                {
                    // Optimistic: assume delivery and stream the next batch (Raft thesis §10.2.1 pipelining).
                    var last = Next + (ulong)entries - 1;
                    Next = last + 1;
                    Inflights.Add(last, bytes);
                }

                MsgAppFlowPaused = Inflights.Full;
                break;
            case ProgressState.Probe:
                // One probe per heartbeat interval: wait for the answer before sending more.
                if (entries > 0)
                {
                    MsgAppFlowPaused = true;
                }

                break;
            default:
                throw new InvariantViolationException($"Sending entries to a follower in state {State}.");
        }
    }

    /// <summary>A follower acknowledged <paramref name="index"/>; returns false if that is stale.</summary>
    public bool MaybeUpdate(ulong index)
    {
        if (index <= Match)
        {
            return false;
        }

        Match = index;
        Next = Math.Max(Next, index + 1);
        MsgAppFlowPaused = false;
        return true;
    }

    /// <summary>
    /// A follower rejected an append at <paramref name="rejected"/>, suggesting
    /// <paramref name="matchHint"/> as the last index that may match. Returns false if the
    /// rejection is stale (answers an append we have since moved past).
    /// </summary>
    public bool MaybeDecrTo(ulong rejected, ulong matchHint)
    {
        if (State == ProgressState.Replicate)
        {
            // Appends are pipelined; a rejection at or below Match answers an old append.
            if (rejected <= Match)
            {
                return false;
            }

            Next = Match + 1;
            return true;
        }

        // In probe state only the latest probe (at Next - 1) counts.
        if (Next - 1 != rejected)
        {
            return false;
        }

        Next = Math.Max(Math.Min(rejected, matchHint + 1), Match + 1);
        MsgAppFlowPaused = false;
        return true;
    }

    public override string ToString() =>
        $"{State} match={Match} next={Next}" + (IsLearner ? " learner" : string.Empty)
        + (IsPaused ? " paused" : string.Empty)
        + (PendingSnapshot > 0 ? $" pendingSnap={PendingSnapshot}" : string.Empty)
        + (Inflights.Count > 0 ? $" inflight={Inflights.Count}" : string.Empty);
}
