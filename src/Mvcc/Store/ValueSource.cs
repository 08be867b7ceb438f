using System.Buffers;
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

        return Build(bytes, revision, keysOnly);
    }

    /// <summary>
    /// <see cref="Read"/> of every revision of <paramref name="revisions"/> (each read keys-only per
    /// <paramref name="keysOnly"/>) into <paramref name="into"/>, the B+tree's lookups made together
    /// (<see cref="Bucket.FindMany"/>: the cache misses of each step of their descents overlap).
    /// Same answers as one <see cref="Read"/> each.
    /// </summary>
    /// <exception cref="CorruptionException">As <see cref="Read"/>, for the first revision it fails on.</exception>
    public void ReadMany(ReadOnlySpan<Revision> revisions, ReadOnlySpan<bool> keysOnly, Span<KeyValue> into)
    {
        if (keyBucket is null || !keyBucket.CanFindMany || revisions.Length < 2)
        {
            for (int i = 0; i < revisions.Length; i++)
            {
                into[i] = Read(revisions[i], keysOnly[i]);
            }

            return;
        }

        // The revisions the pending batch holds are read from it; the others' keys are looked up together.
        int n = revisions.Length;
        var keys = ArrayPool<byte>.Shared.Rent(n * RevisionKey.SizeBytes);
        var hits = ArrayPool<LeafHit>.Shared.Rent(n);
        var inTree = ArrayPool<int>.Shared.Rent(n);
        try
        {
            int looked = 0;
            for (int i = 0; i < n; i++)
            {
                if (pending is not null && pending.TryGet(revisions[i], out var entry))
                {
                    into[i] = Build(entry.StoredValue.Span, revisions[i], keysOnly[i]);
                    continue;
                }

                RevisionKey.Write(keys.AsSpan(looked * RevisionKey.SizeBytes, RevisionKey.SizeBytes), revisions[i], tombstone: false);
                inTree[looked++] = i;
            }

            keyBucket.FindMany(keys.AsSpan(0, looked * RevisionKey.SizeBytes), RevisionKey.SizeBytes, hits.AsSpan(0, looked));
            for (int j = 0; j < looked; j++)
            {
                int i = inTree[j];
                if (!hits[j].Found)
                {
                    throw new CorruptionException(path, 0, $"the key index refers to revision {revisions[i]}, which the store does not hold");
                }

                into[i] = Build(keyBucket.ValueAt(hits[j]), revisions[i], keysOnly[i]);
            }
        }
        finally
        {
            ArrayPool<LeafHit>.Shared.Return(hits, clearArray: true);
            ArrayPool<int>.Shared.Return(inTree);
            ArrayPool<byte>.Shared.Return(keys);
        }
    }

    private KeyValue Build(ReadOnlySpan<byte> bytes, Revision revision, bool keysOnly)
    {
        if (!StoredValue.TryDecode(bytes, revision.Main, tombstone: false, out var decoded))
        {
            throw StoredValue.Malformed(path, revision, tombstone: false, bytes);
        }

        // Key and value are stored side by side: one copy holds both, sliced (one allocation per
        // key-value instead of two; either slice keeps the pair's array alive).
        byte[] copy = (keysOnly ? StoredValue.KeyOf(bytes, decoded) : StoredValue.BodyOf(bytes, decoded)).ToArray();
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
