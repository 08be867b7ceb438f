using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;

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
/// <para>Locking: the batch has no lock of its own; a reader joins it (<see cref="TryAddUnsynchronized"/>)
/// under the store's read-batch gate, the one under which it found or opened the batch, and the flush
/// closes it under that gate too: one lock per read, not two.</para>
/// <para>Invariant: a read is added at most once, only while the batch is open, and every added
/// read is answered (a result or an error) by exactly one <see cref="Flush"/>.</para>
/// </remarks>
internal sealed class LinearizableReadBatch
{
    /// <summary>The largest list a new batch starts with (<see cref="AddedUnsynchronized"/> of the one it replaces, at most this).</summary>
    internal const int MaxInitialCapacity = 4096;

    private readonly List<BatchedRead> _reads;
    private readonly MvccStore _store;
    private readonly Task _readIndex;
    // The store's read-batch gate: guards _reads, _closed and _added until the flush closes the batch.
    private readonly Lock _gate;
    // Null: the default scheduler (the flush runs inline where the group completes).
    private readonly TaskScheduler? _scheduler;
    private readonly bool _flushBeforeReadIndex;
    private bool _closed;
    // How many reads joined; only grows (the list is cleared by the flush, this is not).
    private int _added;

    /// <param name="store">The store the reads read.</param>
    /// <param name="readIndex">The read-index group's task the readers wait for.</param>
    /// <param name="gate">The store's read-batch gate, held by every caller of <see cref="TryAddUnsynchronized"/>.</param>
    /// <param name="scheduler">The member's own scheduler (deterministic mode), or null for the default one.</param>
    /// <param name="brokenRules">The member's broken rules: only <see cref="TestOnlyBrokenRules.ReadBatchBeforeItsReadIndex"/> is read.</param>
    /// <param name="expectedReads">
    /// How many reads the batch expects (the batch it replaces: <see cref="AddedUnsynchronized"/>), so its
    /// list is allocated once at about its size instead of grown by doubling (~2 arrays' worth of
    /// garbage per batch); clamped to 4..<see cref="MaxInitialCapacity"/>. A hint only: the list still grows.
    /// </param>
    public LinearizableReadBatch(MvccStore store, Task readIndex, Lock gate, TaskScheduler? scheduler, TestOnlyBrokenRules brokenRules, int expectedReads)
    {
        _reads = new List<BatchedRead>(Math.Clamp(expectedReads, 4, MaxInitialCapacity));
        _store = store;
        _readIndex = readIndex;
        _gate = gate;
        _scheduler = scheduler;
        _flushBeforeReadIndex = brokenRules.ReadBatchBeforeItsReadIndex;
    }

    /// <summary>The read-index group's task the batch's readers wait for.</summary>
    public Task ReadIndex => _readIndex;

    /// <summary>How many reads joined the batch so far; under the gate (a hint for the next batch's size).</summary>
    public int AddedUnsynchronized
    {
        get
        {
            Debug.Assert(_gate.IsHeldByCurrentThread);
            return _added;
        }
    }

    /// <summary>Adds <paramref name="read"/> unless the batch closed (its flush began); under the gate.</summary>
    public bool TryAddUnsynchronized(BatchedRead read)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        if (_closed)
        {
            return false;
        }

        _reads.Add(read);
        _added++;
        return true;
    }

    /// <summary>
    /// Runs <see cref="Flush"/> when the group completes: inline in the group's release pass on the
    /// default scheduler, as a task queued to the member's own scheduler otherwise. Call once, by the
    /// reader that opened the batch, outside the gate.
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
        lock (_gate)
        {
            _closed = true;
        }

        // Closed: no reader adds to the list any more (TryAddUnsynchronized checks _closed under the
        // same gate), so from here on it is this flush's alone, read without the gate.
        var reads = CollectionsMarshal.AsSpan(_reads);
        if (!_readIndex.IsCompletedSuccessfully && !_flushBeforeReadIndex)
        {
            // What awaiting the group's task throws: its first exception (it is never cancelled).
            var error = _readIndex.Exception?.InnerException ?? new TaskCanceledException(_readIndex);
            foreach (var read in reads)
            {
                read.TryAnswer(null, error);
            }

            _reads.Clear();
            return;
        }

        // Rented per flush, not allocated per batch; cleared as each read is answered, so the pooled
        // arrays keep no request or response alive after it.
        int n = reads.Length;
        var requests = ArrayPool<RangeRequest>.Shared.Rent(n);
        var responses = ArrayPool<RangeResponse?>.Shared.Rent(n);
        var errors = ArrayPool<Exception?>.Shared.Rent(n);
        try
        {
            for (int i = 0; i < n; i++)
            {
                requests[i] = reads[i].Request!;
            }

            // Never throws: a failed slice has each of its reads answered with its own error.
            _store.RangeSinglesValidated(requests.AsSpan(0, n), responses.AsSpan(0, n), errors.AsSpan(0, n));
            for (int i = 0; i < n; i++)
            {
                var response = responses[i];
                var readError = errors[i];
                requests[i] = null!;
                responses[i] = null;
                errors[i] = null;

                // A read cancelled meanwhile was answered by its token: this answer is dropped.
                reads[i].TryAnswer(response, readError);
            }
        }
        finally
        {
            ArrayPool<Exception?>.Shared.Return(errors);
            ArrayPool<RangeResponse?>.Shared.Return(responses);
            ArrayPool<RangeRequest>.Shared.Return(requests);
        }

        _reads.Clear();
    }
}
