namespace EmbeddedRaft;

/// <summary>
/// One thread of its own that runs queued work in the order queued: work items
/// (<see cref="Queue"/>) and, as a <see cref="TaskScheduler"/>, tasks (an async method started on it
/// resumes on it after every await that does not leave its scheduler). For work that should not
/// wait in the thread pool's queue, nor hold one of its workers: on a 2-core machine the pool has
/// two, and a blocking fsync, rename or unlink on one of them delays every work item queued
/// behind (docs/benchmarks.md, "RaftNode compaction beside the Readies, session 15").
/// </summary>
/// <remarks>
/// The thread sleeps on an event while the queue is empty (no spinning: on two cores a spinning
/// waiter takes the time the work it waits for needs). After <see cref="Dispose"/> the thread runs
/// what is queued, then exits; what is queued later goes to the thread pool, so nothing queued is
/// ever dropped. Work that throws ends the process, as it would on the thread pool.
/// </remarks>
internal sealed class DedicatedWorkThread : TaskScheduler, IDisposable
{
    private static readonly Lazy<DedicatedWorkThread> s_backgroundDisk =
        new(() => new DedicatedWorkThread("EmbeddedRaft background disk work"), LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly Lock _lock = new();
    private readonly Queue<object> _queue = new();
    private readonly AutoResetEvent _signal = new(false);
    private readonly Thread _thread;

    // Invariant: true only while the thread found the queue empty and sleeps (or is about to) on
    // _signal; the poster that turns it false (under the lock) sets the event, once.
    private bool _sleeping;
    private bool _stopping;

    public DedicatedWorkThread(string name)
    {
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>
    /// The process's one thread for background disk work that blocks (snapshot files written and
    /// synced, released write-ahead-log segments deleted): started on first use, never stopped.
    /// </summary>
    public static DedicatedWorkThread BackgroundDisk => s_backgroundDisk.Value;

    /// <inheritdoc/>
    public override int MaximumConcurrencyLevel => 1;

    /// <summary>Whether the calling thread is this one.</summary>
    public bool IsCurrentThread => Thread.CurrentThread == _thread;

    /// <summary>Queues <paramref name="item"/> to run on this thread after everything queued before it.</summary>
    public void Queue(IThreadPoolWorkItem item) => Enqueue(item);

    /// <summary>Lets the thread end once it has run what is queued; later work goes to the thread pool.</summary>
    public void Dispose()
    {
        bool wake;
        lock (_lock)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
            wake = _sleeping;
            _sleeping = false;
        }

        if (wake)
        {
            _signal.Set();
        }
    }

    /// <inheritdoc/>
    protected override void QueueTask(Task task) => Enqueue(task);

    /// <inheritdoc/>
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) =>
        IsCurrentThread && TryExecuteTask(task);

    /// <inheritdoc/>
    protected override IEnumerable<Task> GetScheduledTasks()
    {
        lock (_lock)
        {
            return _queue.OfType<Task>().ToArray();
        }
    }

    private void Enqueue(object work)
    {
        bool queued;
        bool wake = false;
        lock (_lock)
        {
            queued = !_stopping;
            if (queued)
            {
                _queue.Enqueue(work);
                wake = _sleeping;
                _sleeping = false;
            }
        }

        if (!queued)
        {
            RunOnThreadPool(work);
        }
        else if (wake)
        {
            _signal.Set();
        }
    }

    private void RunOnThreadPool(object work)
    {
        if (work is Task task)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Scheduler.TryExecuteTask(s.Task), (Scheduler: this, Task: task), preferLocal: false);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem((IThreadPoolWorkItem)work, preferLocal: false);
        }
    }

    private void Run()
    {
        while (true)
        {
            object? work = null;
            lock (_lock)
            {
                if (_queue.Count > 0)
                {
                    work = _queue.Dequeue();
                }
                else if (_stopping)
                {
                    // The event is left to the finalizer: a Dispose racing with this exit may still set it.
                    return;
                }
                else
                {
                    _sleeping = true;
                }
            }

            if (work is null)
            {
                _signal.WaitOne();
                continue;
            }

            if (work is Task task)
            {
                TryExecuteTask(task);
            }
            else
            {
                ((IThreadPoolWorkItem)work).Execute();
            }
        }
    }
}
