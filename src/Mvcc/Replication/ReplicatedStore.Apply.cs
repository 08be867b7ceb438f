using System.Runtime.CompilerServices;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// The apply path: every committed batch decoded and queued to the store's writer in log order,
/// each write carrying its entry's index as consistent index, then the batch's last index; the
/// store's B+tree commits (no-sync) carry the index of the last write they hold, so whatever a
/// crash keeps of the B+tree, its consistent index says exactly which entries it holds.
/// </content>
public sealed partial class ReplicatedStore
{
    /// <summary>Sync the store's B+tree in the background after this many applied entries...</summary>
    internal const int SyncEveryEntries = 10_000;

    /// <summary>...or after this long with anything applied: bounds what a restart replays, and lets the B+tree reuse pages (it reuses none until a sync).</summary>
    internal static readonly TimeSpan SyncEvery = TimeSpan.FromSeconds(1);

    // Apply pipeline only.
    private long _appliedSinceSync;
    private long _lastSyncTimestamp; // set by the constructor, from Clock
    private Task _syncInFlight = Task.CompletedTask;
    private SubmittedCommand[] _submitted = [];

    // The results of the last batch, reused: the node reads them once, before it hands over the
    // next batch (RaftNode's applier awaits each apply before it starts the next). A put's revision
    // is boxed only if read (only its proposer's member reads it).
    private readonly ReplicatedApplyResults _results = new();

    // Put runs, reused from batch to batch (apply pipeline only): the first _runsInUse hold this
    // batch's runs, in log order, with their writer requests.
    private readonly List<ReplicatedPutRun> _runs = [];
    private readonly List<ValueTask<object?>> _runRequests = [];
    private int _runsInUse;

    // The request the next put is decoded into (apply pipeline only): a run copies its fields
    // (ReplicatedPutRun.Add) and it is refilled by the next put; a put with PrevKv takes it for
    // good (a new one replaces it). Cleared at the end of each batch.
    private PutRequest _decoding = new();

    /// <summary>
    /// Applies one committed batch (<see cref="IStateMachine{TResult}.ApplyAsync"/>): queues every
    /// command to the store's writer before waiting for any (so the writer takes them as one run,
    /// in one B+tree batch when they fit), then the batch's last index, and waits until the writer
    /// has handled all of them: on return, reads on this member see the whole batch. Consecutive
    /// plain puts (the common command) go to the writer as one request each run
    /// (<see cref="ReplicatedPutRun"/>) rather than one request each.
    /// </summary>
    /// <remarks>
    /// A refused command (an <see cref="MvccException"/> or <see cref="ArgumentException"/> from the
    /// store: it changed nothing) answers its proposer with the exception; refusals depend only on
    /// the replicated state, so every member refuses alike. Anything else — a command that does
    /// not decode, an unknown kind, a store that failed — throws, and the node stops (fail-stop):
    /// skipping a command another member applied would make the members disagree.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    internal async ValueTask<IReadOnlyList<object?>> ApplyBatchAsync(CommittedBatch batch, CancellationToken cancellationToken)
    {
        var store = Mvcc;
        var commands = batch.Commands;

        // Reused from batch to batch: the node applies one batch at a time (IStateMachine), and
        // every entry is cleared below before this returns.
        if (_submitted.Length < commands.Count)
        {
            _submitted = new SubmittedCommand[Math.Max(commands.Count, 2 * _submitted.Length)];
        }

        var pending = _submitted;
        try
        {
            ReplicatedPutRun? run = null;
#pragma warning disable CA2012 // Each is awaited (or its result taken) exactly once, below: queueing all before awaiting any is the point.
            for (int i = 0; i < commands.Count; i++)
            {
                if (CommandCodec.KindOf(commands[i].Data.Span) == CommandKind.Put)
                {
                    DecodePut(commands[i], _decoding);
                    if (_decoding.PrevKv)
                    {
                        // Answered with a whole response, as its own request (log order: the open
                        // run goes first); the writer holds this request until it has applied it.
                        QueueRun(store, ref run);
                        pending[i] = new SubmittedCommand(SubmitWholePut(store, _decoding, commands[i].Index));
                        _decoding = new PutRequest();
                        continue;
                    }

                    if (RefusedBeforeQueueing(store, _decoding) is { } refusal)
                    {
                        pending[i] = new SubmittedCommand(ValueTask.FromResult<object?>(refusal));
                        continue;
                    }

                    run ??= StartRun();
                    run.Add(_decoding, commands[i].Index);
                    pending[i] = SubmittedCommand.InRun;
                    continue;
                }

                // Queued in log order: a run ends before any other command.
                QueueRun(store, ref run);
                pending[i] = new SubmittedCommand(SubmitOther(store, commands[i]));
            }

            QueueRun(store, ref run);
#pragma warning restore CA2012

            // The writer handles requests in order: once this one is done, every command above is too.
            await store.AdvanceConsistentIndexAsync(batch.LastIndex).ConfigureAwait(ResumeOnScheduler);
            var results = _results;
            results.Clear();
            int runIndex = -1;
            int inRun = 0;
            for (int i = 0; i < commands.Count; i++)
            {
                if (pending[i].IsInRun)
                {
                    if (runIndex < 0 || inRun == _runs[runIndex].Count)
                    {
                        // The next run: done (the writer answered the index above after it), unless
                        // the store failed, which its request then throws (fail-stop).
                        runIndex++;
                        inRun = 0;
                        var request = _runRequests[runIndex];
                        if (!request.IsCompletedSuccessfully)
                        {
                            await request.ConfigureAwait(ResumeOnScheduler);
                        }
                    }

                    // The revision alone (boxed when read); only the proposing member's caller
                    // turns it into a response (PutAsync), the other members never read it.
                    _runs[runIndex].AddResultTo(inRun++, results);
                    continue;
                }

                results.Add(await Settle(pending[i].Other, commands[i].Index).ConfigureAwait(ResumeOnScheduler));
            }

            if (runIndex != _runsInUse - 1)
            {
                throw new InvariantViolationException($"Replicated store: the batch up to index {batch.LastIndex} queued {_runsInUse} put runs, {runIndex + 1} were answered.");
            }

            if (store.ConsistentIndex != batch.LastIndex)
            {
                throw new InvariantViolationException($"Replicated store: after applying the batch up to index {batch.LastIndex} the store's consistent index is {store.ConsistentIndex}.");
            }

            SyncIfDue(store, batch.LastIndex - batch.FirstIndex + 1);
            return results;
        }
        finally
        {
            // Nothing of this batch is kept past it (the request decoded last may slice a command).
            Array.Clear(pending, 0, commands.Count);
            _decoding.Clear();
            ReleaseRuns();
        }
    }

    /// <summary>
    /// Decodes a put command into <paramref name="request"/>: its key and value slice the command,
    /// whose bytes are valid until this batch's apply completes, which waits for the store to have
    /// applied it (the store copies what it keeps).
    /// </summary>
    private static void DecodePut(CommittedCommand command, PutRequest request)
    {
        try
        {
            CommandCodec.DecodePutWithoutCopying(command.Data, request);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Replicated store: the command at index {command.Index} ({CommandKind.Put}) does not decode: {e.Message}", e);
        }
    }

    /// <summary>The store's refusal of a plain put found before queueing (it joins no run then), or null.</summary>
    private static Exception? RefusedBeforeQueueing(MvccStore store, PutRequest request)
    {
        try
        {
            store.CheckPutForRun(request);
            return null;
        }
        catch (Exception e) when (IsRefusal(e))
        {
            return e;
        }
    }

    /// <summary>Queues a put that asks for its previous key-value; a refusal found before queueing is the result.</summary>
    private ValueTask<object?> SubmitWholePut(MvccStore store, PutRequest request, ulong index)
    {
        try
        {
            return Box(store.PutAsync(request, index));
        }
        catch (Exception e) when (IsRefusal(e))
        {
            return ValueTask.FromResult<object?>(e);
        }
    }

    /// <summary>A cleared run for this batch (reused from an earlier one when there is one).</summary>
    private ReplicatedPutRun StartRun()
    {
        if (_runsInUse == _runs.Count)
        {
            _runs.Add(new ReplicatedPutRun());
        }

        var run = _runs[_runsInUse++];
        if (run.Count != 0)
        {
            throw new InvariantViolationException("Replicated store: a put run was reused before it was cleared.");
        }

        return run;
    }

    /// <summary>Queues the open run (if any) to the writer as one request, and closes it.</summary>
    private void QueueRun(MvccStore store, ref ReplicatedPutRun? run)
    {
        if (run is null)
        {
            return;
        }

#pragma warning disable CA2012 // Awaited (or its result taken) once, in ApplyBatchAsync.
        _runRequests.Add(store.ApplyPutRunAsync(run));
#pragma warning restore CA2012
        run = null;
    }

    /// <summary>
    /// At the end of a batch: clears its runs for the next one. A run whose request has not
    /// completed (the apply failed before waiting for it: the node stops) may still be read by the
    /// writer, so it is dropped rather than cleared.
    /// </summary>
    private void ReleaseRuns()
    {
        for (int i = 0; i < _runsInUse; i++)
        {
            if (i < _runRequests.Count && !_runRequests[i].IsCompleted)
            {
                _runs[i] = new ReplicatedPutRun();
                continue;
            }

            _runs[i].Clear();
        }

        // Their ops were made for one use (not pooled): nothing to return.
        _runRequests.Clear();
        _runsInUse = 0;
    }

    /// <summary>Decodes a command other than a put and queues it to the store; a refusal found before queueing is the result.</summary>
    private ValueTask<object?> SubmitOther(MvccStore store, CommittedCommand command)
    {
        var data = command.Data.Span;
        var kind = CommandCodec.KindOf(data);
        try
        {
            switch (kind)
            {
                case CommandKind.Put:
                    throw new InvariantViolationException($"Replicated store: the put at index {command.Index} reached the path for other commands (ApplyBatchAsync takes every put).");
                case CommandKind.DeleteRange:
                    return Box(store.DeleteRangeAsync(CommandCodec.DecodeDeleteRange(data), command.Index));
                case CommandKind.Txn:
                    return Box(store.TxnAsync(CommandCodec.DecodeTxn(data), command.Index));
                case CommandKind.Compact:
                    var (revision, physical) = CommandCodec.DecodeCompact(data);
                    var compaction = store.CompactAsync(revision, false, command.Index).AsTask();

                    // Its proposer (if on this member) observes it; elsewhere nobody does.
                    compaction.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, _options.Scheduler ?? TaskScheduler.Default);
                    return ValueTask.FromResult<object?>(new PendingCompaction(compaction, physical));
                case CommandKind.MemberPut:
                    return ApplyMemberPut(store, CommandCodec.DecodeMemberPut(data), command.Index);
                case CommandKind.MemberRemove:
                    return ApplyMemberRemove(store, CommandCodec.DecodeMemberRemove(data), command.Index);
                default:
                    ValueTask<object?>? result = null;
                    ApplyLeaseCommand(store, kind, command, ref result);
                    if (result is null)
                    {
                        ApplyHashCheckCommand(store, kind, command, ref result);
                    }

                    return result ?? throw new InvalidDataException($"Replicated store: the command at index {command.Index} has kind {(byte)kind}, which this version does not know (written by a newer one?).");
            }
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Replicated store: the command at index {command.Index} ({kind}) does not decode: {e.Message}", e);
        }
        catch (Exception e) when (IsRefusal(e))
        {
            return ValueTask.FromResult<object?>(e);
        }
    }

    /// <summary>The command's result, or its refusal as the result; any other failure is thrown (fail-stop).</summary>
    private async ValueTask<object?> Settle(ValueTask<object?> pending, ulong index)
    {
        try
        {
            return await pending.ConfigureAwait(ResumeOnScheduler);
        }
        catch (ArgumentOutOfRangeException e) when (e.ParamName == "consistentIndex")
        {
            throw new InvariantViolationException($"Replicated store: the entry at index {index} was applied out of order: {e.Message}");
        }
        catch (Exception e) when (IsRefusal(e))
        {
            return e;
        }
    }

    private static bool IsRefusal(Exception e) =>
        e is MvccException || (e is ArgumentException && e is not ArgumentOutOfRangeException { ParamName: "consistentIndex" });

    private async ValueTask<object?> Box<T>(ValueTask<T> pending) => await pending.ConfigureAwait(ResumeOnScheduler);

    /// <summary>A command queued to the store: a plain put in one of the batch's runs (<see cref="InRun"/>), or any other command's result.</summary>
    private readonly struct SubmittedCommand
    {
        private SubmittedCommand(bool inRun) => IsInRun = inRun;

        public SubmittedCommand(ValueTask<object?> other) => Other = other;

        /// <summary>A plain put queued in the batch's current run: its result is the run's.</summary>
        public static SubmittedCommand InRun => new(inRun: true);

        public ValueTask<object?> Other { get; }

        public bool IsInRun { get; }
    }

    /// <summary>Starts a background sync of the store's B+tree when enough was applied since the last one (one at a time).</summary>
    private void SyncIfDue(MvccStore store, ulong applied)
    {
        _appliedSinceSync += (long)applied;
        if (!_syncInFlight.IsCompleted || (_appliedSinceSync < SyncEveryEntries && Clock.GetElapsedTime(_lastSyncTimestamp) < SyncEvery))
        {
            return;
        }

        _appliedSinceSync = 0;
        _lastSyncTimestamp = Clock.GetTimestamp();
        _syncInFlight = SyncQuietlyAsync(store);
    }

    private async Task SyncQuietlyAsync(MvccStore store)
    {
        try
        {
            await store.SyncAsync().ConfigureAwait(ResumeOnScheduler);
        }
        catch (ObjectDisposedException)
        {
            // Stopping (or a snapshot swapped the store): disposal syncs.
        }
        catch (Exception e)
        {
            // The store is faulted now: the next apply fails and stops the node with this cause.
            ReplicatedStoreLog.SyncFailed(_logger, e, MemberId);
        }
    }

    /// <summary>Leases (ReplicatedStore.Leases.cs): applies a lease command kind, setting <paramref name="result"/>; leaves it null for a kind that is not a lease's.</summary>
    partial void ApplyLeaseCommand(MvccStore store, CommandKind kind, CommittedCommand command, ref ValueTask<object?>? result);

    /// <summary>Hash check (ReplicatedStore.HashCheck.cs): applies a hash-check command kind, setting <paramref name="result"/>; leaves it null otherwise.</summary>
    partial void ApplyHashCheckCommand(MvccStore store, CommandKind kind, CommittedCommand command, ref ValueTask<object?>? result);
}
