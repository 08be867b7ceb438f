namespace EmbeddedRaft.Consensus.Host;

/// <summary>One <see cref="RaftNode{TResult}.TransferLeadershipAsync"/> call: completes when the node sees <see cref="Target"/> lead.</summary>
internal sealed class PendingTransfer
{
    public PendingTransfer(ulong target)
    {
        Target = target;
    }

    public ulong Target { get; }

    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public CancellationTokenRegistration Registration { get; set; }

    /// <summary>Loop-owned: the tick at which it fails with a timeout.</summary>
    public long DeadlineTick { get; set; }
}
