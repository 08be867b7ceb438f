using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Host;

/// <content>
/// Snapshots: taken by policy between two applies and written in the background, the log
/// compacted once they are durable, and streamed to and from peers through the transport.
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

    /// <summary>For tests: completes once the log's newest installed snapshot is at or above <paramref name="index"/>.</summary>
    internal Task WaitForSnapshotAsync(ulong index)
    {
        lock (_stateLock)
        {
            if (_snapshotIndex >= index)
            {
                return Task.CompletedTask;
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _snapshotWaiters.Add((index, signal));
            return signal.Task;
        }
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
        _inbox.TryPost(new StepInput(message));
    }

    // Captures the state between two applies (cheap, synchronous) and writes it out in the
    // background: the loop and the applies go on meanwhile. The log is compacted by the loop once
    // the data is durable.
    private void TakeSnapshotIfDue(bool force)
    {
        var due = force
            || (_options.SnapshotEveryEntries > 0 && _entriesSinceSnapshot >= _options.SnapshotEveryEntries)
            || (_options.SnapshotEveryLogBytes > 0 && _bytesSinceSnapshot >= _options.SnapshotEveryLogBytes);
        if (!due || _applierIndex == 0 || Interlocked.CompareExchange(ref _snapshotInProgress, 1, 0) != 0)
        {
            return;
        }

        var captured = _stateMachine.CreateSnapshot();
        if (captured.Index != _applierIndex)
        {
            throw new InvariantViolationException($"The state machine captured a snapshot at index {captured.Index}, but it has applied up to {_applierIndex}.");
        }

        var header = _dedup.WriteHeader();
        var metadata = new SnapshotMetadata(_applierIndex, _applierTerm, _applierConf);
        _entriesSinceSnapshot = 0;
        _bytesSinceSnapshot = 0;
        RunInBackground(() => WriteSnapshotAsync(metadata, header, captured));
    }

    private async Task WriteSnapshotAsync(SnapshotMetadata metadata, byte[] header, IStateMachineSnapshot captured)
    {
        try
        {
            await _log.SaveSnapshotDataAsync(
                metadata,
                async (destination, ct) =>
                {
                    await destination.WriteAsync(header, ct);
                    await captured.WriteToAsync(destination, ct);
                },
                _stopping.Token);
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
            await captured.DisposeAsync();
            Volatile.Write(ref _snapshotInProgress, 0);
        }

        // Applies meanwhile may have made the next snapshot due; look now rather than at the next apply.
        EnqueueApply(new SnapshotRequest(Force: false));
    }
}
