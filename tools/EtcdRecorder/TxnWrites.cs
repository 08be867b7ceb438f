namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// The keys a txn being generated already writes (across its branches and nested txns), so the
/// generator adds only writes that do not overlap them: etcd refuses a txn whose puts repeat a key or
/// fall inside one of its delete ranges ("duplicate key given in txn request").
/// </summary>
internal sealed class TxnWrites
{
    public List<byte[]> Puts { get; } = [];

    public List<(byte[] Key, byte[] End)> Deletes { get; } = [];

    /// <summary>A key no put or delete of the txn touches yet, or null when none is left.</summary>
    public byte[]? FreeKey(IReadOnlyList<byte[]> keys, Random random)
    {
        for (int attempt = 0; attempt < 8; attempt++)
        {
            byte[] key = keys[random.Next(keys.Count)];
            bool taken = Puts.Any(put => put.AsSpan().SequenceEqual(key)) || Deletes.Any(delete => KeySpace.Covers(delete.Key, delete.End, key));
            if (!taken)
            {
                return key;
            }
        }

        return null;
    }

    /// <summary>Whether deleting [key, end) leaves every put of the txn outside it.</summary>
    public bool CanDelete((byte[] Key, byte[] End) range) => !Puts.Any(put => KeySpace.Covers(range.Key, range.End, put));
}
