namespace EmbeddedRaft.TestSupport;

/// <summary>
/// A single-threaded <see cref="TaskScheduler"/> for deterministic runs: queued work waits until
/// the test calls <see cref="RunUntilIdle"/>, which runs it first-in first-out on the calling
/// thread, including everything that work queues in turn, until nothing is left. Together with a
/// manual clock (FakeTimeProvider), the fault-injecting file system and the in-process network,
/// a whole cluster then runs on one thread, and the same seed gives the same execution.
/// </summary>
/// <remarks>
/// Tasks are never inlined (an await that would continue synchronously on another thread is
/// queued instead), so the order of work is the queue's order and nothing else. Code that leaves
/// this scheduler (Task.Run, ConfigureAwait(false), a thread-pool timer) breaks determinism;
/// <see cref="RunUntilIdle"/> cannot see such work.
/// Thread-safety: <see cref="TaskScheduler.QueueTask"/> may be called from any thread;
/// <see cref="RunUntilIdle"/> from one thread at a time.
/// </remarks>
public sealed class DeterministicTaskScheduler : TaskScheduler
{
    private readonly Queue<Task> _queue = new();
    private readonly Lock _lock = new();
    private int _runningThreadId;

    // The thread that drives this scheduler (the first to run it): tasks queued from any other
    // thread escaped it (their timing, not the queue, decides when they run).
    private int _drivingThreadId;
    private readonly List<string> _queuedOffThread = [];

    /// <summary>A task factory whose tasks start on this scheduler.</summary>
    public TaskFactory Factory => new(CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskContinuationOptions.None, this);

    /// <summary>Tasks run so far (a cheap progress measure for traces and bounds).</summary>
    public long ExecutedTasks { get; private set; }

    /// <summary>Tasks waiting to run.</summary>
    public int QueuedTasks
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <inheritdoc/>
    public override int MaximumConcurrencyLevel => 1;

    /// <summary>
    /// Tasks queued from a thread other than the one that runs <see cref="RunUntilIdle"/> (the first
    /// with the stack that queued it): each is work that reached this scheduler by way of another
    /// thread (a thread-pool continuation, a real timer), so when it runs depends on timing. A
    /// deterministic run has none.
    /// </summary>
    public IReadOnlyList<string> QueuedOffThread
    {
        get
        {
            lock (_lock)
            {
                return [.. _queuedOffThread];
            }
        }
    }

    /// <summary>
    /// Runs queued tasks in order on the calling thread until the queue is empty, and returns how
    /// many ran.
    /// </summary>
    /// <param name="maxTasks">A bound: a livelock (work that always queues more work) fails instead of hanging.</param>
    /// <exception cref="InvalidOperationException">More than <paramref name="maxTasks"/> tasks ran, or this is called re-entrantly.</exception>
    public int RunUntilIdle(int maxTasks = 1_000_000)
    {
        if (_runningThreadId != 0)
        {
            throw new InvalidOperationException("RunUntilIdle is already running (called from inside a task it runs, or from two threads).");
        }

        _runningThreadId = Environment.CurrentManagedThreadId;
        if (_drivingThreadId == 0)
        {
            _drivingThreadId = _runningThreadId;
        }

        int ran = 0;
        try
        {
            while (true)
            {
                Task? next;
                lock (_lock)
                {
                    if (!_queue.TryDequeue(out next))
                    {
                        return ran;
                    }
                }

                if (++ran > maxTasks)
                {
                    throw new InvalidOperationException($"More than {maxTasks} tasks ran without the scheduler going idle: a livelock?");
                }

                ExecutedTasks++;
                TryExecuteTask(next);
            }
        }
        finally
        {
            _runningThreadId = 0;
        }
    }

    /// <summary>Starts <paramref name="work"/> on this scheduler (queued; runs at the next <see cref="RunUntilIdle"/>).</summary>
    public Task<T> Run<T>(Func<Task<T>> work) => Factory.StartNew(work).Unwrap();

    /// <summary>Starts <paramref name="work"/> on this scheduler (queued; runs at the next <see cref="RunUntilIdle"/>).</summary>
    public Task Run(Func<Task> work) => Factory.StartNew(work).Unwrap();

    /// <inheritdoc/>
    protected override void QueueTask(Task task)
    {
        int thread = Environment.CurrentManagedThreadId;
        lock (_lock)
        {
            _queue.Enqueue(task);
            if (_drivingThreadId != 0 && thread != _drivingThreadId)
            {
                _queuedOffThread.Add(_queuedOffThread.Count == 0 ? $"task {task.Id} queued on thread {thread}:\n{Environment.StackTrace}" : $"task {task.Id} queued on thread {thread}");
            }
        }
    }

    /// <inheritdoc/>
    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

    /// <inheritdoc/>
    protected override IEnumerable<Task> GetScheduledTasks()
    {
        lock (_lock)
        {
            return _queue.ToArray();
        }
    }
}
