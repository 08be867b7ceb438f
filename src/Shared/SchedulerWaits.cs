namespace EmbeddedRaft;

/// <summary>
/// Cancellable waits that, on a caller running on a custom <see cref="TaskScheduler"/> (the
/// deterministic mode's, e.g. the whole-cluster simulator's), complete only through work queued to
/// that scheduler by the thread that finished what was awaited. <c>Task.WaitAsync(token)</c> and a
/// contended <c>SemaphoreSlim.WaitAsync(token)</c> finish their waits in thread-pool callbacks
/// (Task.CancellationPromise; SemaphoreSlim's waiter node runs its continuations asynchronously),
/// so work after them reached the scheduler from a pool thread at a time the pool decided. On the
/// default scheduler these are the framework's own waits, unchanged.
/// </summary>
internal static class SchedulerWaits
{
    /// <summary><paramref name="task"/>'s outcome, or cancellation by <paramref name="cancellationToken"/>.</summary>
    internal static Task WaitAsync(Task task, CancellationToken cancellationToken)
    {
        var scheduler = TaskScheduler.Current;
        if (scheduler == TaskScheduler.Default)
        {
            return task.WaitAsync(cancellationToken);
        }

        return WaitOnScheduler<bool>(task, scheduler, gateToReleaseIfLate: null, cancellationToken);
    }

    /// <inheritdoc cref="WaitAsync(Task, CancellationToken)"/>
    internal static Task<T> WaitAsync<T>(Task<T> task, CancellationToken cancellationToken)
    {
        var scheduler = TaskScheduler.Current;
        if (scheduler == TaskScheduler.Default)
        {
            return task.WaitAsync(cancellationToken);
        }

        return WaitOnScheduler<T>(task, scheduler, gateToReleaseIfLate: null, cancellationToken);
    }

    /// <summary>
    /// Takes <paramref name="gate"/> (count 1 or more), waiting asynchronously, or throws
    /// <see cref="OperationCanceledException"/> without it. On a custom scheduler a wait cancelled
    /// before the gate came gives the gate back as soon as the semaphore hands it to the dead waiter.
    /// </summary>
    internal static Task EnterAsync(SemaphoreSlim gate, CancellationToken cancellationToken)
    {
        var scheduler = TaskScheduler.Current;
        if (scheduler == TaskScheduler.Default)
        {
            return gate.WaitAsync(cancellationToken);
        }

        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        // Without a token the semaphore's waiter node itself is returned: Release completes it on
        // the releasing thread (the scheduler's), and the continuation below is queued from there.
        return WaitOnScheduler<bool>(gate.WaitAsync(CancellationToken.None), scheduler, gate, cancellationToken);
    }

    private static Task<T> WaitOnScheduler<T>(Task task, TaskScheduler scheduler, SemaphoreSlim? gateToReleaseIfLate, CancellationToken cancellationToken)
    {
        if (task.IsCompleted)
        {
            return task as Task<T> ?? Waiter<T>.Completed(task);
        }

        var waiter = new Waiter<T>(scheduler, gateToReleaseIfLate, cancellationToken);
        if (cancellationToken.CanBeCanceled)
        {
            waiter.Registration = cancellationToken.Register(static state => ((Waiter<T>)state!).CancelOnScheduler(), waiter);
        }

        _ = task.ContinueWith(static (done, state) => ((Waiter<T>)state!).Complete(done), waiter, CancellationToken.None, TaskContinuationOptions.DenyChildAttach, scheduler);
        return waiter.Task;
    }

    /// <summary>
    /// The wait's outcome. Its continuations run synchronously: it is completed only by tasks
    /// running on the scheduler, so whoever awaits it resumes there, in the scheduler's order.
    /// </summary>
    private sealed class Waiter<T>(TaskScheduler scheduler, SemaphoreSlim? gateToReleaseIfLate, CancellationToken cancellationToken)
        : TaskCompletionSource<T>
    {
        internal CancellationTokenRegistration Registration { get; set; }

        internal static Task<T> Completed(Task done)
        {
            var waiter = new Waiter<T>(TaskScheduler.Default, null, CancellationToken.None);
            waiter.Complete(done);
            return waiter.Task;
        }

        internal void CancelOnScheduler() =>
            _ = System.Threading.Tasks.Task.Factory.StartNew(static state => ((Waiter<T>)state!).Cancel(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler);

        internal void Complete(Task done)
        {
            Registration.Dispose();
            bool set = done.Status switch
            {
                TaskStatus.RanToCompletion => TrySetResult(done is Task<T> typed ? typed.Result : default!),
                TaskStatus.Canceled => TrySetCanceled(CancellationTokenOf(done)),
                _ => TrySetException(done.Exception!.InnerExceptions),
            };

            // Cancelled first: the semaphore still handed the gate to this waiter; nobody holds it.
            if (!set && gateToReleaseIfLate is not null && done.Status == TaskStatus.RanToCompletion)
            {
                gateToReleaseIfLate.Release();
            }
        }

        private void Cancel() => TrySetCanceled(cancellationToken);

        private static CancellationToken CancellationTokenOf(Task canceled)
        {
            try
            {
                canceled.GetAwaiter().GetResult();
            }
            catch (OperationCanceledException e)
            {
                return e.CancellationToken;
            }

            return CancellationToken.None;
        }
    }
}
