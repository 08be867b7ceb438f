namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The linearizable single-key reads of one <see cref="ReplicatedStore"/> that wait for the same
/// read-index group (the task <see cref="Consensus.Host.RaftNode{TResult}.ReadIndexAsync"/> returned
/// them: the group's own, shared): when it completes, they are read together
/// (<see cref="MvccStore.RangeSinglesValidated"/>: one lock, one read view, their B+tree lookups'
/// cache misses overlapped) and answered one after another on that thread, where each reader's
/// continuation would otherwise have run its own read.
/// </summary>
/// <remarks>
/// <para>Why it is linearizable: every reader called <c>ReadIndexAsync</c> itself before joining, and
/// the batch reads only after that call's task completed, exactly as a reader awaiting it would.
/// A reader that finds the batch closed (its flush began) opens a new batch on the same task, whose
/// flush runs at once elsewhere: never a read before its group completed, never one left out.</para>
/// <para>Invariant: a read is added at most once, only while the batch is open, and every added
/// read is answered (a result or an error) by exactly one <see cref="Flush"/>.</para>
/// </remarks>
internal sealed class LinearizableReadBatch(MvccStore store, Task readIndex)
{
    private readonly List<BatchedRead> _reads = [];
    private bool _closed;

    /// <summary>The read-index group's task the batch's readers wait for.</summary>
    public Task ReadIndex => readIndex;

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

    /// <summary>Runs <see cref="Flush"/> when the group completes (inline, in the group's release pass); call once, by the reader that opened the batch.</summary>
    public void WaitForReadIndex() =>
        readIndex.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(Flush);

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

        if (!readIndex.IsCompletedSuccessfully)
        {
            // What awaiting the group's task throws: its first exception (it is never cancelled).
            var error = readIndex.Exception?.InnerException ?? new TaskCanceledException(readIndex);
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
        store.RangeSinglesValidated(requests, responses, errors);
        for (int i = 0; i < reads.Length; i++)
        {
            // A read cancelled meanwhile was answered by its token: this answer is dropped.
            reads[i].TryAnswer(responses[i], errors[i]);
        }
    }
}
