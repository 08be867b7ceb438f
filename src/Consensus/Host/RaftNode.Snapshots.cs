using System.IO.Pipelines;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// Snapshots: taken by policy between two applies and written in the background, the log
/// compacted once they are durable, and streamed to and from peers through the transport. Two
/// kinds (docs/consensus.md): a plain <see cref="IStateMachine{TResult}"/>'s snapshots hold its
/// data, sent from the file; an <see cref="IDurableStateMachine{TResult}"/>'s hold only metadata
/// (its own files hold the data), and a follower gets the state captured when it is sent.
/// </content>
public sealed partial class RaftNode<TResult>
{
    private void OnSnapshotInstalled(ulong index)
    {
        List<TaskCompletionSource> due;
        lock (_stateLock)
        {
            _snapshotIndex = Math.Max(_snapshotIndex, index);
            due = _snapshotWaiters.Where(w => w.Index <= _snapshotIndex).Select(w => w.Signal).ToList();
            _snapshotWaiters.RemoveAll(w => w.Index <= _snapshotIndex);
        }

        due.ForEach(s => s.TrySetResult());
    }

    /// <summary>
    /// For tests: completes once the log's newest installed snapshot is at or above
    /// <paramref name="index"/>; fails with the node's <see cref="NodeStoppedException"/> (as its
    /// pending proposals do) when the node stops first, or has stopped already.
    /// </summary>
    internal Task WaitForSnapshotAsync(ulong index)
    {
        lock (_stateLock)
        {
            if (_snapshotIndex >= index)
            {
                return Task.CompletedTask;
            }

            if (_stopped)
            {
                // Stop failed the waiters it found; nothing installs a snapshot for a later one.
                return Task.FromException(new NodeStoppedException(Id, _stopCause));
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _snapshotWaiters.Add((index, signal));
            return signal.Task;
        }
    }

    /// <summary>The loop hands a snapshot message to the transport: from its file, or for a durable state machine as captured now.</summary>
    private void SendSnapshot(Message message)
    {
        if (_durableStateMachine is not null)
        {
            // Captured on the apply pipeline between two applies, so the image is exactly at the
            // applied index the message will name.
            EnqueueApply(new SendCaptureWork(message));
            return;
        }

        RunInBackground(() => SendSnapshotAsync(message));
    }

    private async Task SendSnapshotAsync(Message message)
    {
        var succeeded = false;
        try
        {
            var snapshot = message.Snapshot ?? throw new InvariantViolationException($"Snapshot message without a snapshot: {message}.");
            var data = await _log.OpenSnapshotDataAsync(snapshot.Index, _stopping.Token);
            await using (data)
            {
                await _transport.SendSnapshotAsync(message, data, _stopping.Token);
            }

            succeeded = true;
            _metrics.Snapshot("sent");
            RaftNodeLog.SnapshotSent(_logger, Id, snapshot.Index, message.To);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            RaftNodeLog.SnapshotSendFailed(_logger, e, Id, message.To);
        }
        catch (Exception)
        {
            return;
        }

        _inbox.TryPost(new SnapshotSentInput(message.To, succeeded));
    }

    private async ValueTask ReceiveSnapshotAsync(Message message, Stream data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(data);
        var snapshot = message.Snapshot ?? throw new ArgumentException($"A snapshot message must carry its metadata: {message}.", nameof(message));
        if (_inbox.IsClosed)
        {
            throw Stopped();
        }

        // Durable before the core sees it: its acknowledgement promises the data is here.
        await _log.SaveSnapshotDataAsync(snapshot, async (destination, ct) => await data.CopyToAsync(destination, ct), cancellationToken);
        _metrics.Snapshot("received");
        _inbox.TryPost(LoopItem.Step(message));
    }

    // Captures the state between two applies (cheap, synchronous) and writes it out in the
    // background: the loop and the applies go on meanwhile. The log is compacted by the loop once
    // the snapshot is durable.
    private void TakeSnapshotIfDue(bool force)
    {
        var due = force
            || (_options.SnapshotEveryEntries > 0 && _entriesSinceSnapshot >= _options.SnapshotEveryEntries)
            || (_options.SnapshotEveryLogBytes > 0 && _bytesSinceSnapshot >= _options.SnapshotEveryLogBytes);
        if (!due || _applierIndex == 0 || Interlocked.CompareExchange(ref _snapshotInProgress, 1, 0) != 0)
        {
            return;
        }

        var metadata = new SnapshotMetadata(_applierIndex, _applierTerm, _applierConf);
        _entriesSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        if (_durableStateMachine is { } durable)
        {
            // No copy of the data: only the metadata and the deduplication window, once the state
            // machine's own files hold this index (etcd's snapshot: the consistent index is in bbolt).
            var window = _dedup.WriteHeader(metadataOnly: true);
            RunInBackground(() => WriteMetadataSnapshotAsync(metadata, window, durable));
            return;
        }

        var captured = _stateMachine.CreateSnapshot();
        if (captured.Index != _applierIndex)
        {
            throw new InvariantViolationException($"The state machine captured a snapshot at index {captured.Index}, but it has applied up to {_applierIndex}.");
        }

        var header = _dedup.WriteHeader();
        RunInBackground(() => WriteSnapshotAsync(metadata, header, captured));
    }

    private async Task WriteSnapshotAsync(SnapshotMetadata metadata, byte[] header, IStateMachineSnapshot captured)
    {
        try
        {
            await SaveSnapshotAsync(metadata, async (destination, ct) =>
            {
                await destination.WriteAsync(header, ct);
                await captured.WriteToAsync(destination, ct);
            });
        }
        finally
        {
            await captured.DisposeAsync();
        }
    }

    /// <summary>
    /// A durable state machine's snapshot by policy: the state machine is synced first, and the
    /// snapshot (metadata + deduplication window, no data) saved and the log compacted only if its
    /// durable applied index reached the snapshot's. Invariant: the log is never compacted past what
    /// the state machine's files hold, so a crash at any point restarts from those files and the
    /// entries after them, all still in the log.
    /// </summary>
    private async Task WriteMetadataSnapshotAsync(SnapshotMetadata metadata, byte[] window, IDurableStateMachine<TResult> durable)
    {
        try
        {
            var durableIndex = await durable.SyncAppliedAsync(_stopping.Token);
            if (durableIndex < metadata.Index)
            {
                throw new InvariantViolationException($"Node {Id}: the state machine reported applied index {durableIndex} durable after a sync, below the {metadata.Index} it had applied before it: compacting the log to {metadata.Index} would lose entries a restart needs.");
            }
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            Volatile.Write(ref _snapshotInProgress, 0);
            Stop(e);
            return;
        }
        catch (OperationCanceledException)
        {
            Volatile.Write(ref _snapshotInProgress, 0);
            return;
        }

        await SaveSnapshotAsync(metadata, async (destination, ct) => await destination.WriteAsync(window, ct));
    }

    /// <summary>Saves a snapshot's file, then asks the loop to compact the log behind it; a failure stops the node.</summary>
    private async Task SaveSnapshotAsync(SnapshotMetadata metadata, Func<Stream, CancellationToken, ValueTask> writeData)
    {
        try
        {
            await _log.SaveSnapshotDataAsync(metadata, writeData, _stopping.Token);
            _metrics.Snapshot("taken");
            _inbox.TryPost(new SnapshotSavedInput(metadata));
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            Stop(e);
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
        finally
        {
            Volatile.Write(ref _snapshotInProgress, 0);
        }

        // Applies meanwhile may have made the next snapshot due; look now rather than at the next apply.
        EnqueueApply(new SnapshotRequest(Force: false));
    }

    /// <summary>
    /// A durable state machine's snapshot for a follower (<see cref="SendCaptureWork"/>, on the
    /// apply pipeline): the state as of the last applied batch, named by that batch's index, term
    /// and configuration instead of the older snapshot the core chose (etcd's merged snapshot
    /// message). Invariant: that index is at or past the core's — applied indexes only grow, and
    /// the log's snapshots are of applied states — so the follower gets at least what the core
    /// meant to send, and the image is exactly at the index the follower installs.
    /// </summary>
    private void CaptureForSend(Message message)
    {
        var chosen = message.Snapshot ?? throw new InvariantViolationException($"Snapshot message without a snapshot: {message}.");
        if (_applierIndex < chosen.Index)
        {
            throw new InvariantViolationException($"Node {Id} would send the state at applied index {_applierIndex}, below the snapshot at {chosen.Index} the core chose for {message.To}.");
        }

        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        var captured = _stateMachine.CreateSnapshot();
        if (captured.Index != _applierIndex)
        {
            throw new InvariantViolationException($"The state machine captured a snapshot at index {captured.Index}, but it has applied up to {_applierIndex}.");
        }

        var header = _dedup.WriteHeader();
        var current = new Message
        {
            Type = message.Type,
            To = message.To,
            From = message.From,
            Term = message.Term,
            Snapshot = new SnapshotMetadata(_applierIndex, _applierTerm, _applierConf),
        };
        RunInBackground(() => StreamCapturedAsync(current, header, captured));
    }

    private async Task StreamCapturedAsync(Message message, byte[] header, IStateMachineSnapshot captured)
    {
        var succeeded = false;
        try
        {
            // The transport reads a stream; the image is written: a pipe between them, both ends
            // resuming on the node's scheduler (one chunk or two in memory, never the whole image).
            var pipeScheduler = new TaskSchedulerPipeScheduler(_scheduler);
            var pipe = new Pipe(new PipeOptions(
                pauseWriterThreshold: 1024 * 1024,
                resumeWriterThreshold: 512 * 1024,
                readerScheduler: pipeScheduler,
                writerScheduler: pipeScheduler,
                useSynchronizationContext: false));
            using var abandon = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var writing = WriteCapturedAsync(pipe.Writer, header, captured, abandon.Token);
            try
            {
                await using var data = pipe.Reader.AsStream(leaveOpen: true);
                await _transport.SendSnapshotAsync(message, data, _stopping.Token);
            }
            finally
            {
                // A transport that returned has read the whole image, or failed: then the writer
                // (waiting for room, or still writing) is abandoned rather than left writing the
                // rest of the image into a pipe nobody reads.
                abandon.Cancel();
                await pipe.Reader.CompleteAsync();
                await AwaitQuietly(writing);
            }

            succeeded = true;
            _metrics.Snapshot("sent");
            RaftNodeLog.SnapshotSent(_logger, Id, message.Snapshot!.Index, message.To);
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            RaftNodeLog.SnapshotSendFailed(_logger, e, Id, message.To);
        }
        catch (Exception)
        {
            return;
        }
        finally
        {
            await captured.DisposeAsync();
        }

        _inbox.TryPost(new SnapshotSentInput(message.To, succeeded));
    }

    private static async Task WriteCapturedAsync(PipeWriter writer, byte[] header, IStateMachineSnapshot captured, CancellationToken cancellationToken)
    {
        try
        {
            await using var destination = writer.AsStream(leaveOpen: true);
            await destination.WriteAsync(header, cancellationToken);
            await captured.WriteToAsync(destination, cancellationToken);
            await destination.FlushAsync(cancellationToken);
            await writer.CompleteAsync();
        }
        catch (Exception e)
        {
            await writer.CompleteAsync(e);
            throw;
        }
    }
}
