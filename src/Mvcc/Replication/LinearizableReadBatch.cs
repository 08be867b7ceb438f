namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The linearizable single-key reads of one <see cref="ReplicatedStore"/> that wait for the same
/// read-index group (the task <see cref="Consensus.Host.RaftNode{TResult}.ReadIndexAsync"/> returned
/// them: the group's own, shared): when it completes, they are read together
/// (<see cref="MvccStore.RangeSinglesValidated"/>: a few index locks and read views, their B+tree
/// lookups' cache misses overlapped) and answered one after another on that thread, where each
/// reader's continuation would otherwise have run its own read.
/// </summary>
/// <remarks>
/// <para>Why it is linearizable: every reader called <c>ReadIndexAsync</c> itself before joining, and
/// the batch reads only after that call's task completed, exactly as a reader awaiting it would.
/// A reader that finds the batch closed (its flush began) opens a new batch on the same task, whose
/// flush runs at once elsewhere: never a read before its group completed, never one left out.</para>
/// <para>Where the flush runs: on the default scheduler, inline where the group completes (the
/// group's release pass, on a pool thread). With a scheduler of its own (the deterministic mode, the
/// whole-cluster simulator) the flush is a task queued to that scheduler when the group completes
/// (an inline continuation there would be sent to the thread pool by the framework, off the
/// scheduler), and each reader that awaited on the scheduler resumes there, queued in the order
/// the flush answers them: the same seed gives the same order.</para>
/// <para>Invariant: a read is added at most once, only while the batch is open, and every added
/// read is answered (a result or an error) by exactly one <see cref="Flush"/>.</para>
/// </remarks>
internal sealed class LinearizableReadBatch
{
    private readonly List<BatchedRead> _reads = [];
    private readonly MvccStore _store;
    private readonly Task _readIndex;
    // Null: the default scheduler (the flush runs inline where the group completes).
    private readonly TaskScheduler? _scheduler;
    private readonly bool _flushBeforeReadIndex;
    private bool _closed;

    /// <param name="store">The store the reads read.</param>
    /// <param name="readIndex">The read-index group's task the readers wait for.</param>
    /// <param name="scheduler">The member's own scheduler (deterministic mode), or null for the default one.</param>
    /// <param name="brokenRules">The member's broken rules: only <see cref="TestOnlyBrokenRules.ReadBatchBeforeItsReadIndex"/> is read.</param>
    public LinearizableReadBatch(MvccStore store, Task readIndex, TaskScheduler? scheduler, TestOnlyBrokenRules brokenRules)
    {
        _store = store;
        _readIndex = readIndex;
        _scheduler = scheduler;
        _flushBeforeReadIndex = brokenRules.ReadBatchBeforeItsReadIndex;
    }

    /// <summary>The read-index group's task the batch's readers wait for.</summary>
    public Task ReadIndex => _readIndex;

    /// <summary>Adds <paramref name="read"/> unless the batch closed (its flush began); any thread.</summary>
    public bool TryAdd(BatchedRead read)
    {
        lock (_reads)
        {
            if (_closed)
            {
                return false;
            }

            _reads.Add(read);
            return true;
        }
    }

    /// <summary>
    /// Runs <see cref="Flush"/> when the group completes: inline in the group's release pass on the
    /// default scheduler, as a task queued to the member's own scheduler otherwise. Call once, by the
    /// reader that opened the batch.
    /// </summary>
    public void WaitForReadIndex()
    {
        if (_flushBeforeReadIndex)
        {
            // The broken rule: the reads are read as soon as the batch opens, from whatever this
            // member applied by then, and answered before any leader confirmed a read point.
            _ = Task.Factory.StartNew(static batch => ((LinearizableReadBatch)batch!).Flush(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, _scheduler ?? TaskScheduler.Default);
            return;
        }

        if (_scheduler is null)
        {
            _readIndex.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(Flush);
        }
        else
        {
            _ = _readIndex.ContinueWith(static (_, batch) => ((LinearizableReadBatch)batch!).Flush(), this, CancellationToken.None, TaskContinuationOptions.DenyChildAttach, _scheduler);
        }
    }

    /// <summary>Closes the batch and answers its reads: the group's error, or each read's own result or error.</summary>
    private void Flush()
    {
        BatchedRead[] reads;
        lock (_reads)
        {
            _closed = true;
            reads = [.. _reads];
            _reads.Clear();
        }

        if (!_readIndex.IsCompletedSuccessfully && !_flushBeforeReadIndex)
        {
            // What awaiting the group's task throws: its first exception (it is never cancelled).
            var error = _readIndex.Exception?.InnerException ?? new TaskCanceledException(_readIndex);
            foreach (var read in reads)
            {
                read.TryAnswer(null, error);
            }

            return;
        }

        var requests = new RangeRequest[reads.Length];
        for (int i = 0; i < reads.Length; i++)
        {
            requests[i] = reads[i].Request!;
        }

        var responses = new RangeResponse?[reads.Length];
        var errors = new Exception?[reads.Length];
        _store.RangeSinglesValidated(requests, responses, errors);
        for (int i = 0; i < reads.Length; i++)
        {
            // A read cancelled meanwhile was answered by its token: this answer is dropped.
            reads[i].TryAnswer(responses[i], errors[i]);
        }
    }
}
