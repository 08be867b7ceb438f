namespace EmbeddedRaft.Mvcc;

/// <summary>The answer to <see cref="MvccStore.HashKV"/>, as etcd's <c>HashKVResponse</c>.</summary>
public sealed class HashKVResponse
{
    /// <summary>The header: the store's current revision.</summary>
    public required ResponseHeader Header { get; init; }

    /// <summary>
    /// CRC-32C over every stored revision up to the hashed revision that the compaction keeps,
    /// in revision order (key bytes then value bytes, as stored; see docs/formats.md): equal on
    /// every replica with the same history, whatever its physical compaction progress.
    /// </summary>
    public uint Hash { get; init; }

    /// <summary>The compact revision the hash was taken under (-1 when the store was never compacted, as etcd).</summary>
    public long CompactRevision { get; init; }

    /// <summary>The revision hashed.</summary>
    public long HashRevision { get; init; }
}
