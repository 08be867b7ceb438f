namespace EmbeddedRaft.Mvcc.Store;

/// <summary>What the writer thread is asked to do.</summary>
internal enum WriteOpKind
{
    Put,
    DeleteRange,
    Txn,
    Compact,
    ConsistentIndex,
    Sync,
    AwaitCompactions,
    Stop,

    // Leases (Leases/LeaseApplier.cs).
    LeaseGrant,
    LeaseRevoke,
}

/// <summary>
/// One request queued for the writer thread, and the task its caller awaits. The writer completes
/// it when it is durable (synced mode), applied (no-sync mode), refused, or failed.
/// </summary>
internal sealed class WriteOp(WriteOpKind kind, object? request, ulong consistentIndex)
{
    public WriteOpKind Kind { get; } = kind;

    public object? Request { get; } = request;

    /// <summary>The Raft index that produced the write, 0 for none.</summary>
    public ulong ConsistentIndex { get; } = consistentIndex;

    /// <summary>For <see cref="WriteOpKind.Compact"/>: the revision, and whether to wait for the physical compaction.</summary>
    public long CompactRevision { get; init; }

    public bool Physical { get; init; }

    /// <summary>The response, held until the batch that holds the write is committed.</summary>
    public object? Result { get; set; }

    public TaskCompletionSource<object?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Complete() => Completion.TrySetResult(Result);

    public void Fail(Exception exception) => Completion.TrySetException(exception);
}
