using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A <see cref="RecordingStateMachine"/> that is durable by itself, as a replicated store's B+tree
/// is: applies change only its memory until <see cref="SyncAppliedAsync"/> copies them to its
/// "files" (with the applied index), and <see cref="Reopen"/> is what a restart after a crash finds
/// there — the state as of the last sync, nothing applied after it. So a node that compacted its
/// log past the last sync would restart with entries missing, which the node must never allow.
/// </summary>
public sealed class DurableRecordingStateMachine : RecordingStateMachine, IDurableStateMachine<long>
{
    private readonly Lock _filesLock = new();
    private (ulong Index, List<(ulong Index, string Command)> Applied) _files = (0, []);

    /// <summary>Syncs so far.</summary>
    public int Syncs { get; private set; }

    /// <summary>The applied index the last sync made durable.</summary>
    public ulong DurableIndex
    {
        get
        {
            lock (_filesLock)
            {
                return _files.Index;
            }
        }
    }

    public ValueTask<ulong> SyncAppliedAsync(CancellationToken cancellationToken)
    {
        var state = State();
        lock (_filesLock)
        {
            if (state.Index > _files.Index)
            {
                _files = state;
            }

            Syncs++;
            return ValueTask.FromResult(_files.Index);
        }
    }

    /// <summary>A restored snapshot is durable when the restore completes (a store swaps in a synced file).</summary>
    protected override void OnRestored()
    {
        var state = State();
        lock (_filesLock)
        {
            _files = state;
        }
    }

    /// <summary>The state machine a restart finds: what the last sync made durable.</summary>
    public DurableRecordingStateMachine Reopen()
    {
        var reopened = new DurableRecordingStateMachine();
        lock (_filesLock)
        {
            reopened.Load(_files.Index, [.. _files.Applied]);
            reopened._files = (_files.Index, [.. _files.Applied]);
        }

        return reopened;
    }
}
