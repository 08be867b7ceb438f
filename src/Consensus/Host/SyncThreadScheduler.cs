namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// A task scheduler with one thread of its own that runs its tasks one at a time, in the order
/// queued, blocking while there are none: a node's sync pipeline runs on it when the node's
/// scheduler is the thread pool (<see cref="RaftNodeOptions.Scheduler"/> left null).
/// </summary>
/// <remarks>
/// <para>Why a thread: between two fsyncs the sync pipeline waits for the loop's next written Ready.
/// On the thread pool, the loop's post queued the pipeline's wake-up to the loop thread's own work
/// queue, and a loop with input waiting keeps its thread turn after turn, so the wake-up waited for
/// another (busy) worker to steal it: at 256 in flight the next fsync started 0.5–0.8 ms after the
/// Ready was in the log's buffers, as long as an fsync itself (docs/benchmarks.md, "RaftNode group
/// commit, session 19", part 2). A thread blocked here is woken by the kernel as soon as the post
/// signals it; the fsync it runs inline then blocks this thread, not a pool worker.</para>
/// <para>The pipeline's awaits resume here by themselves: the node's inbox, the write-ahead log's
/// waiters and task awaits capture <see cref="TaskScheduler.Current"/> (no <c>ConfigureAwait(false)</c>
/// on that path). Never used with a scheduler of the host's own: a deterministic run keeps every
/// step on its one thread.</para>
/// <para>Lifetime: <see cref="Complete"/> once the pipeline has ended; the thread then runs what is
/// queued and exits. A task queued after that (a stray continuation) runs on the thread pool, so
/// nothing queued here is ever lost. Thread-safety: every member may be called from any thread.</para>
/// </remarks>
internal sealed class SyncThreadScheduler : TaskScheduler
{
    private readonly object _lock = new();
    private readonly Queue<Task> _queue = new();
    private readonly Thread _thread;
    private bool _completed;
    private bool _idle;

    /// <summary>Starts the scheduler's thread (a background thread named <paramref name="threadName"/>).</summary>
    public SyncThreadScheduler(string threadName)
    {
        _thread = new Thread(Run) { IsBackground = true, Name = threadName };
        _thread.UnsafeStart();
    }

    /// <inheritdoc/>
    public override int MaximumConcurrencyLevel => 1;

    /// <summary>No more work comes: the thread runs what is queued and exits; later tasks go to the thread pool.</summary>
    public void Complete()
    {
        lock (_lock)
        {
            _completed = true;
            if (_idle)
            {
                Monitor.Pulse(_lock);
            }
        }
    }

    /// <inheritdoc/>
    protected override void QueueTask(Task task)
    {
        lock (_lock)
        {
            if (!_completed)
            {
                _queue.Enqueue(task);
                if (_idle)
                {
                    Monitor.Pulse(_lock);
                }

                return;
            }
        }

        ThreadPool.UnsafeQueueUserWorkItem(static s => s.Scheduler.TryExecuteTask(s.Task), (Scheduler: this, Task: task), preferLocal: false);
    }

    /// <inheritdoc/>
    /// <remarks>Only on the scheduler's own thread: anywhere else the task would run beside the one running here.</remarks>
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) =>
        Thread.CurrentThread == _thread && TryExecuteTask(task);

    /// <inheritdoc/>
    protected override IEnumerable<Task> GetScheduledTasks()
    {
        lock (_lock)
        {
            return _queue.ToArray();
        }
    }

    private void Run()
    {
        while (true)
        {
            Task task;
            lock (_lock)
            {
                while (_queue.Count == 0)
                {
                    if (_completed)
                    {
                        return;
                    }

                    _idle = true;
                    Monitor.Wait(_lock);
                    _idle = false;
                }

                task = _queue.Dequeue();
            }

            // A task's failure is the task's (observed by whoever awaits it), never this thread's.
            TryExecuteTask(task);
        }
    }
}
