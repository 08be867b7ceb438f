using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// One membership call in flight. A configuration change entry carries no request id (its bytes
/// are the core's encoding), so the node proposes its calls one at a time and recognises its own
/// as the next committed change equal to it; an equal change proposed elsewhere at the same moment
/// has the same effect, so completing on it is still true.
/// </summary>
internal sealed class PendingConfChange
{
    public PendingConfChange(ConfChange change)
    {
        Change = change;
    }

    public ConfChange Change { get; }

    public TaskCompletionSource<ConfState> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>Loop-owned: handed to the core.</summary>
    public bool Proposed { get; set; }

    /// <summary>Loop-owned: the tick at which it fails as timed out; 0 for none (proposed on the leader).</summary>
    public long DeadlineTick { get; set; }

    /// <summary>Loop-owned: the index it was committed at, 0 until then.</summary>
    public ulong Index { get; set; }

    /// <summary>Loop-owned: the configuration as of <see cref="Index"/>.</summary>
    public ConfState? Result { get; set; }

    public bool Matches(ConfChange committed) =>
        committed.Transition == Change.Transition && committed.Changes.SequenceEqual(Change.Changes);
}
