namespace EmbeddedRaft.Mvcc;

/// <summary>Writes one key, as etcd's <c>PutRequest</c>.</summary>
public sealed class PutRequest
{
    // Fields rather than auto-properties so that Overwrite can refill a request the store reuses
    // (the replicated apply's decoding request and ReplicatedPutRun's view, a pooled write op's own
    // copy of its caller's put); to every other caller a request is immutable.
    private ReadOnlyMemory<byte> _key;
    private ReadOnlyMemory<byte> _value;
    private long _lease;
    private bool _prevKv;
    private bool _ignoreValue;
    private bool _ignoreLease;

    /// <summary>The key. Must not be empty.</summary>
    public ReadOnlyMemory<byte> Key { get => _key; init => _key = value; }

    /// <summary>The value (may be empty). Must be empty with <see cref="IgnoreValue"/>.</summary>
    public ReadOnlyMemory<byte> Value { get => _value; init => _value = value; }

    /// <summary>The lease to attach the key to, 0 for none (detaching it from the lease it had). The lease must exist (<see cref="MvccStore.LeaseGrantAsync"/>); must be 0 with <see cref="IgnoreLease"/>.</summary>
    public long Lease { get => _lease; init => _lease = value; }

    /// <summary>Return the key-value as it was before this put (<see cref="PutResponse.PrevKv"/>).</summary>
    public bool PrevKv { get => _prevKv; init => _prevKv = value; }

    /// <summary>Keep the current value (the key must exist).</summary>
    public bool IgnoreValue { get => _ignoreValue; init => _ignoreValue = value; }

    /// <summary>Keep the current lease (the key must exist).</summary>
    public bool IgnoreLease { get => _ignoreLease; init => _ignoreLease = value; }

    /// <summary>
    /// Refills this request (the store only, for a request it owns and no one else holds: the put
    /// the replicated apply decodes next, a <see cref="Replication.ReplicatedPutRun"/>'s view of the
    /// put its writer applies, a pooled write op's own request between two puts).
    /// </summary>
    internal void Overwrite(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, long lease, bool prevKv, bool ignoreValue, bool ignoreLease)
    {
        _key = key;
        _value = value;
        _lease = lease;
        _prevKv = prevKv;
        _ignoreValue = ignoreValue;
        _ignoreLease = ignoreLease;
    }

    /// <summary>Drops what <see cref="Overwrite"/> put in (the slices of a command), for a request kept to be refilled.</summary>
    internal void Clear() => Overwrite(default, default, 0, false, false, false);
}
