using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// Where a read finds the stored value of a revision: the pending batch it took under the index
/// lock (uncommitted writes), else the B+tree transaction it began under the same lock (a reader's
/// snapshot, or the writer's own write transaction, which sees everything).
/// </summary>
internal sealed class ValueSource(PendingBatch? pending, Bucket? keyBucket, string path)
{
    /// <summary>The key-value stored at <paramref name="revision"/> (a put).</summary>
    /// <exception cref="CorruptionException">The index names a revision the store does not hold, or its bytes are malformed.</exception>
    public KeyValue Read(Revision revision, bool keysOnly)
    {
        scoped ReadOnlySpan<byte> bytes;
        if (pending is not null && pending.TryGet(revision, out var entry))
        {
            bytes = entry.StoredValue.Span;
        }
        else
        {
            Span<byte> key = stackalloc byte[RevisionKey.SizeBytes];
            RevisionKey.Write(key, revision, tombstone: false);
            if (keyBucket is null || !keyBucket.TryGet(key, out bytes))
            {
                throw new CorruptionException(path, 0, $"the key index refers to revision {revision}, which the store does not hold");
            }
        }

        if (!StoredValue.TryDecode(bytes, tombstone: false, out var decoded))
        {
            throw new CorruptionException(path, 0, $"the stored value of revision {revision} is malformed");
        }

        // Key and value are stored side by side: one copy holds both, sliced (one allocation per
        // key-value instead of two; either slice keeps the pair's array alive).
        byte[] copy = (keysOnly ? StoredValue.KeyOf(bytes, decoded) : bytes[StoredValue.HeaderSizeBytes..]).ToArray();
        return new KeyValue
        {
            Key = copy.AsMemory(0, decoded.KeyLength),
            CreateRevision = decoded.CreateRevision,
            ModRevision = revision.Main,
            Version = decoded.Version,
            Value = keysOnly ? ReadOnlyMemory<byte>.Empty : copy.AsMemory(decoded.KeyLength),
            Lease = decoded.Lease,
        };
    }
}
