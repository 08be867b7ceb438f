namespace EmbeddedRaft.Mvcc;

/// <summary>Writes one key, as etcd's <c>PutRequest</c>.</summary>
public sealed class PutRequest
{
    /// <summary>The key. Must not be empty.</summary>
    public ReadOnlyMemory<byte> Key { get; init; }

    /// <summary>The value (may be empty). Must be empty with <see cref="IgnoreValue"/>.</summary>
    public ReadOnlyMemory<byte> Value { get; init; }

    /// <summary>The lease to attach the key to, 0 for none (detaching it from the lease it had). The lease must exist (<see cref="MvccStore.LeaseGrantAsync"/>); must be 0 with <see cref="IgnoreLease"/>.</summary>
    public long Lease { get; init; }

    /// <summary>Return the key-value as it was before this put (<see cref="PutResponse.PrevKv"/>).</summary>
    public bool PrevKv { get; init; }

    /// <summary>Keep the current value (the key must exist).</summary>
    public bool IgnoreValue { get; init; }

    /// <summary>Keep the current lease (the key must exist).</summary>
    public bool IgnoreLease { get; init; }
}
