using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The frame copies a RaftNode has borrowed from its transport (<see cref="IReceivedFrameBorrower"/>),
/// oldest first, and the rule that gives each back: a frame returns to its pool once no holder of
/// this node can read an entry it carried. Owned by the node's loop (not thread-safe).
/// </summary>
/// <remarks>
/// <para>
/// The rule (the holders are session 19's list, docs/benchmarks.md "TCP transport, session 19"). A
/// lent frame's byte fields are only entry data of appends (the transport lends nothing else), and
/// on a follower an entry's data is held by, in index order: the inbox (until stepped: frames are
/// recorded here only after their messages were stepped); the core's unstable log (entries above
/// the index handed out for applying, and the stable ones kept for it, always above the applied
/// index); the Ready being written (not yet durable, so above the applied index: a node applies only
/// what it made durable); the apply pipeline (until the state machine's apply completes:
/// <see cref="CommittedCommand.Data"/> is valid only until then, and the applied index is published
/// after); and the durable log's cache (every entry from its first cached index on). So with
/// <c>watermark = min(applied, first cached - 1)</c>, a frame whose highest entry index is at or
/// below the watermark is read by nobody, and goes back.
/// </para>
/// <para>
/// Not a holder on a follower: the transport's send queues and a leader's reads of its log (for
/// appends to others), because a follower sends no entries. A node that stops being a follower
/// (a candidate may become leader and send what it holds) forgets every frame it borrowed: the
/// collector takes them, none is returned. Frames borrowed while leader (a stale leader's appends
/// from a newer one make it a follower when stepped) are recorded only once the node is a follower.
/// </para>
/// <para>
/// Bounded: at most <see cref="MaxHeldBytes"/> of arrays are recorded; past that the oldest are
/// forgotten (a follower whose applying lags keeps its frames alive through its log anyway, but the
/// record must not keep alive what the log has let go).
/// </para>
/// </remarks>
internal sealed class ReceivedFrameLedger(ReceivedFramePool pool)
{
    /// <summary>The most bytes of borrowed arrays recorded for return.</summary>
    public const long MaxHeldBytes = 64L * 1024 * 1024;

    private readonly Queue<LentFrame> _held = new();
    private long _heldBytes; // Invariant: the sum of the lengths of the arrays in _held.
    private long _returnedTotal; // Written by the loop only; read by tests from any thread.

    /// <summary>The pool the frames came from and go back to.</summary>
    public ReceivedFramePool Pool { get; } = pool;

    /// <summary>Frames recorded and not yet returned or forgotten.</summary>
    public int Count => _held.Count;

    /// <summary>Frames given back to the pool since the node started; for tests (any thread).</summary>
    public long ReturnedTotal => Volatile.Read(ref _returnedTotal);

    /// <summary>
    /// Records <paramref name="frames"/>, whose messages the core has just stepped, its log then
    /// ending at <paramref name="lastIndex"/>. Only a follower records; any other role forgets them at
    /// once (see the remarks). A frame with entries beyond the log's end is forgotten too: they were
    /// refused (a stale leader's, a mutated frame's), and its index might never be reached, so recorded
    /// it would hold back every frame behind it.
    /// </summary>
    public void Record(ReadOnlySpan<LentFrame> frames, bool isFollower, ulong lastIndex)
    {
        if (!isFollower)
        {
            return;
        }

        foreach (var frame in frames)
        {
            if (frame.HighestEntryIndex == 0)
            {
                throw new InvariantViolationException("A frame lent without an entry: nothing would ever tell when it is free.");
            }

            if (frame.HighestEntryIndex > lastIndex)
            {
                continue;
            }

            _held.Enqueue(frame);
            _heldBytes += frame.Buffer.Length;
        }

        while (_heldBytes > MaxHeldBytes && _held.TryDequeue(out var oldest))
        {
            _heldBytes -= oldest.Buffer.Length;
        }
    }

    /// <summary>
    /// Returns the oldest frames whose highest entry index is at or below <paramref name="watermark"/>
    /// (no holder reads an entry at or below it; see the remarks), stopping at the first that is not.
    /// </summary>
    public void ReturnUpTo(ulong watermark)
    {
        while (_held.TryPeek(out var oldest) && oldest.HighestEntryIndex <= watermark)
        {
            _held.Dequeue();
            _heldBytes -= oldest.Buffer.Length;
            Pool.Return(oldest.Buffer);
            Volatile.Write(ref _returnedTotal, _returnedTotal + 1);
        }
    }

    /// <summary>Forgets every frame recorded (this node stopped being a follower): none is returned.</summary>
    public void ForgetAll()
    {
        _held.Clear();
        _heldBytes = 0;
    }
}
