namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.LeaseRevokeAsync"/>, as etcd's <c>LeaseRevokeResponse</c>.</summary>
public sealed class LeaseRevokeResponse
{
    /// <summary>The header; its revision is the one that deleted the lease's keys, or the current one when it had none.</summary>
    public required ResponseHeader Header { get; init; }
}
