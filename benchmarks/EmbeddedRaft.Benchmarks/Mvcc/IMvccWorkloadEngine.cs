namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// The MVCC benchmarks' workload, run the same way by MvccStore and by the raw B+tree beside it:
/// 16-byte keys, 100-byte values, writes made durable in groups of 10,000 (MvccStore's default batch
/// limit; the raw tree commits every 10,000 keys, synced).
/// </summary>
internal interface IMvccWorkloadEngine : IAsyncDisposable
{
    /// <summary>Writes every key of <paramref name="order"/> once; returns when all are durable.</summary>
    Task PutAllAsync(byte[] keys, int[] order, byte[] value);

    /// <summary>Reads each key of <paramref name="order"/> alone (its own consistent snapshot); returns the value bytes seen.</summary>
    long GetEach(byte[] keys, int[] order);

    /// <summary>Reads, for each start of <paramref name="starts"/>, the <paramref name="length"/> keys from it in key order; returns the keys seen.</summary>
    long RangeEach(byte[] keys, int[] starts, int length);

    /// <summary>For each key of <paramref name="order"/>: if it exists, overwrite it, as one atomic step; returns when all are durable.</summary>
    Task CompareAndPutAllAsync(byte[] keys, int[] order, byte[] value);

    /// <summary>Closes and opens the engine again (for MvccStore: the key index is rebuilt from the B+tree).</summary>
    Task ReopenAsync();

    /// <summary>
    /// Closes the engine and returns how many B+tree commits it made since it was opened empty (the txid's
    /// growth): what a batched-put iteration paid in commits, which its time depends on.
    /// </summary>
    Task<long> CloseCountingCommitsAsync();

    /// <summary>How often the last <see cref="PutAllAsync"/> found the write it awaited not yet durable (0 for the raw tree, which never waits).</summary>
    long LastPutWaits { get; }
}
