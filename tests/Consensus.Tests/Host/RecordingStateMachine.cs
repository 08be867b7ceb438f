using System.Buffers.Binary;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A state machine that records every command it applies, in order, with its log index. The result
/// of a command is how many commands were applied up to and including it. It checks the node's
/// side of the contract as it goes: batches are contiguous and start right after what it applied,
/// a snapshot restores only forward. The object outlives a node, so reusing it across a restart
/// models a durable state machine (its <see cref="AppliedIndex"/> survives); a new one models an
/// in-memory one. Thread-safe.
/// </summary>
public class RecordingStateMachine : IStateMachine<long>
{
    private readonly Lock _lock = new();
    private readonly List<(ulong Index, string Command)> _applied = [];
    private readonly List<(ulong Index, TaskCompletionSource Signal)> _waiters = [];
    private ulong _appliedIndex;

    /// <summary>Called at the start of every apply (on the node's apply pipeline): a test holds applies here.</summary>
    public Func<CommittedBatch, Task>? BeforeApply { get; set; }

    /// <summary>Set to make every later call fail: the node must never call a state machine after it stopped.</summary>
    public bool Retired { get; set; }

    public int Restores { get; private set; }

    /// <summary>How many times the node captured this state machine (<see cref="CreateSnapshot"/>).</summary>
    public int Captures { get; private set; }

    /// <summary>Every apply and restore in order: <c>apply F-L</c> (a batch's first and last index), <c>restore I</c>.</summary>
    public IReadOnlyList<string> Events
    {
        get
        {
            lock (_lock)
            {
                return [.. _events];
            }
        }
    }

    private readonly List<string> _events = [];

    public ulong AppliedIndex
    {
        get
        {
            lock (_lock)
            {
                return _appliedIndex;
            }
        }
    }

    /// <summary>Every applied command with the log index it was applied at, in order.</summary>
    public IReadOnlyList<(ulong Index, string Command)> AppliedCommands
    {
        get
        {
            lock (_lock)
            {
                return [.. _applied];
            }
        }
    }

    public IReadOnlyList<string> Commands
    {
        get
        {
            lock (_lock)
            {
                return _applied.Select(a => a.Command).ToList();
            }
        }
    }

    public async ValueTask<IReadOnlyList<long>> ApplyAsync(CommittedBatch batch, CancellationToken cancellationToken)
    {
        CheckNotRetired();
        if (BeforeApply is { } before)
        {
            await before(batch);
        }

        var results = new List<long>(batch.Commands.Count);
        List<TaskCompletionSource> signals;
        lock (_lock)
        {
            if (batch.FirstIndex != _appliedIndex + 1 || batch.LastIndex < batch.FirstIndex)
            {
                throw new InvalidOperationException($"Batch [{batch.FirstIndex}, {batch.LastIndex}] does not follow applied index {_appliedIndex}.");
            }

            foreach (var c in batch.Commands)
            {
                _applied.Add((c.Index, System.Text.Encoding.UTF8.GetString(c.Data.Span)));
                results.Add(_applied.Count);
            }

            _appliedIndex = batch.LastIndex;
            _events.Add($"apply {batch.FirstIndex}-{batch.LastIndex}");
            signals = TakeSignalsUnsynchronized();
        }

        signals.ForEach(s => s.TrySetResult());
        return results;
    }

    public IStateMachineSnapshot CreateSnapshot()
    {
        CheckNotRetired();
        lock (_lock)
        {
            Captures++;
            return new Snapshot(_appliedIndex, [.. _applied]);
        }
    }

    public async ValueTask RestoreAsync(ulong index, Stream data, CancellationToken cancellationToken)
    {
        CheckNotRetired();
        var header = new byte[4];
        await data.ReadExactlyAsync(header, cancellationToken);
        var count = BinaryPrimitives.ReadInt32LittleEndian(header);
        var restored = new List<(ulong, string)>(count);
        var fixedPart = new byte[12];
        for (var i = 0; i < count; i++)
        {
            await data.ReadExactlyAsync(fixedPart, cancellationToken);
            var bytes = new byte[BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(8))];
            await data.ReadExactlyAsync(bytes, cancellationToken);
            restored.Add((BinaryPrimitives.ReadUInt64LittleEndian(fixedPart), System.Text.Encoding.UTF8.GetString(bytes)));
        }

        if (data.ReadByte() != -1)
        {
            throw new InvalidOperationException("Snapshot data continues after the recorded commands.");
        }

        List<TaskCompletionSource> signals;
        lock (_lock)
        {
            if (index < _appliedIndex)
            {
                throw new InvalidOperationException($"Restore to {index} below applied index {_appliedIndex}.");
            }

            _applied.Clear();
            _applied.AddRange(restored);
            _appliedIndex = index;
            Restores++;
            _events.Add($"restore {index}");
            signals = TakeSignalsUnsynchronized();
        }

        OnRestored();

        signals.ForEach(s => s.TrySetResult());
    }

    /// <summary>After a restore (a durable state machine makes it durable at once, as a store's file swap does).</summary>
    protected virtual void OnRestored()
    {
    }

    /// <summary>The applied commands and index now, as one consistent pair (what a sync would make durable).</summary>
    protected (ulong Index, List<(ulong Index, string Command)> Applied) State()
    {
        lock (_lock)
        {
            return (_appliedIndex, [.. _applied]);
        }
    }

    /// <summary>Starts from a state recorded earlier by <see cref="State"/> (a state machine reopened from its files).</summary>
    protected void Load(ulong index, List<(ulong Index, string Command)> applied)
    {
        lock (_lock)
        {
            _applied.Clear();
            _applied.AddRange(applied);
            _appliedIndex = index;
        }
    }

    /// <summary>Completes once the applied index reaches <paramref name="index"/>.</summary>
    public Task WaitForAppliedAsync(ulong index)
    {
        lock (_lock)
        {
            if (_appliedIndex >= index)
            {
                return Task.CompletedTask;
            }

            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((index, signal));
            return signal.Task;
        }
    }

    private List<TaskCompletionSource> TakeSignalsUnsynchronized()
    {
        var due = _waiters.Where(w => w.Index <= _appliedIndex).Select(w => w.Signal).ToList();
        _waiters.RemoveAll(w => w.Index <= _appliedIndex);
        return due;
    }

    private void CheckNotRetired()
    {
        if (Retired)
        {
            throw new InvalidOperationException("The node called its state machine after it was disposed.");
        }
    }

    private sealed class Snapshot(ulong index, List<(ulong Index, string Command)> applied) : IStateMachineSnapshot
    {
        public ulong Index => index;

        public async ValueTask WriteToAsync(Stream destination, CancellationToken cancellationToken)
        {
            var header = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(header, applied.Count);
            await destination.WriteAsync(header, cancellationToken);
            foreach (var (i, command) in applied)
            {
                var bytes = System.Text.Encoding.UTF8.GetBytes(command);
                var fixedPart = new byte[12];
                BinaryPrimitives.WriteUInt64LittleEndian(fixedPart, i);
                BinaryPrimitives.WriteInt32LittleEndian(fixedPart.AsSpan(8), bytes.Length);
                await destination.WriteAsync(fixedPart, cancellationToken);
                await destination.WriteAsync(bytes, cancellationToken);
            }
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
