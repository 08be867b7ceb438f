namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The <see cref="RaftNode{TResult}.ReadIndexAsync"/> callers that joined in the same tick while no
/// round had taken them yet: they share a deadline, a round, and one completion (every caller
/// awaits this one task: a call allocates nothing of its own). It is its own completion source and
/// its own work item.
/// </summary>
/// <remarks>
/// The task is created without <see cref="TaskCreationOptions.RunContinuationsAsynchronously"/> on
/// purpose, and is completed only by <see cref="Execute"/>, run on the node's scheduler (the thread
/// pool, or a deterministic scheduler), never on the loop: the callers' continuations run one after
/// another on that one thread — one hand-off per round instead of one per caller (etcd's read loop
/// wakes all the waiters of a round with one channel close). <see cref="Release"/> is first-wins
/// and may be called from the loop only.
/// </remarks>
internal sealed class ReadGroup : TaskCompletionSource, IThreadPoolWorkItem
{
    private readonly ReadIndexRounds _owner;
    private Exception? _error;
    private bool _released;

    public ReadGroup(long deadlineTick, ReadIndexRounds owner)
    {
        DeadlineTick = deadlineTick;
        _owner = owner;
    }

    /// <summary>The tick at which the group's callers fail if no round has answered them.</summary>
    public long DeadlineTick { get; }

    /// <summary>How many callers joined the group (counted under the rounds' lock as they join).</summary>
    public int Callers { get; private set; }

    /// <summary>Counts one more caller; called under <see cref="ReadIndexRounds"/>' lock only.</summary>
    public void AddCaller() => Callers++;

    /// <summary>Loop-owned: true once <see cref="Release"/> queued the completion.</summary>
    public bool IsReleased => _released;

    /// <summary>
    /// Queues the completion on <paramref name="scheduler"/>: success when <paramref name="error"/>
    /// is null, else that failure. Only the first call counts.
    /// </summary>
    public void Release(Exception? error, TaskScheduler scheduler)
    {
        if (_released)
        {
            return;
        }

        _released = true;
        _error = error;
        _owner.OnPassQueued();
        SchedulerWork.Queue(this, scheduler);
    }

    /// <summary>Completes the task: the callers' continuations run here, inline (a release pass, see <see cref="ReadIndexRounds.OnPassQueued"/>).</summary>
    public void Execute()
    {
        try
        {
            if (_error is null)
            {
                TrySetResult();
            }
            else
            {
                TrySetException(_error);
            }
        }
        finally
        {
            _owner.OnPassEnded();
        }
    }
}
