using EmbeddedRaft.Benchmarks.BTree;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// MvccStore doing the MVCC workload: standalone, synced (a write returns once durable), default
/// batching (10,000 writes or 100 ms per B+tree commit), the B+tree with the same page size and page
/// cache as the raw engine. Writes are kept <see cref="MvccWorkload.WritesInFlight"/> in flight, as
/// many concurrent clients would; a synced batch is committed when the writer finds no write queued,
/// so its batches are somewhat smaller than the raw tree's commits (see <see cref="MvccWorkload.WritesInFlight"/>).
/// </summary>
internal sealed class MvccStoreEngine : IMvccWorkloadEngine
{
    private readonly string _directory;
    private readonly long _openedTxid;
    private MvccStore _store;

    private MvccStoreEngine(string directory, MvccStore store, long openedTxid)
    {
        _directory = directory;
        _store = store;
        _openedTxid = openedTxid;
    }

    public static MvccStoreOptions Options { get; } = new() { BTree = EmbeddedRaftEngine.Options };

    public MvccStore Store => _store;

    public long LastPutWaits { get; private set; }

    /// <summary>Creates the store, and notes the B+tree commit it starts from (closing it once to read that, before any measured work).</summary>
    public static async Task<MvccStoreEngine> OpenAsync(string directory)
    {
        await MvccStore.Open(directory, Options).DisposeAsync().ConfigureAwait(false);
        long openedTxid = ReadTxid(directory);
        return new MvccStoreEngine(directory, MvccStore.Open(directory, Options), openedTxid);
    }

    public async Task PutAllAsync(byte[] keys, int[] order, byte[] value) =>
        LastPutWaits = await MvccWorkload.RunWindowedAsync(order.Length, MvccWorkload.WritesInFlight, i =>
            _store.PutAsync(new PutRequest { Key = MvccWorkload.Key(keys, order[i]), Value = value })).ConfigureAwait(false);

    public Task CompareAndPutAllAsync(byte[] keys, int[] order, byte[] value) =>
        MvccWorkload.RunWindowedAsync(order.Length, MvccWorkload.WritesInFlight, i =>
        {
            ReadOnlyMemory<byte> key = MvccWorkload.Key(keys, order[i]);
            return _store.TxnAsync(new TxnRequest
            {
                Compare = [new Compare { Key = key, Target = CompareTarget.Version, Result = CompareResult.Greater, Version = 0 }],
                Success = [RequestOp.Put(new PutRequest { Key = key, Value = value })],
            });
        });

    public long GetEach(byte[] keys, int[] order)
    {
        long bytes = 0;
        foreach (int index in order)
        {
            RangeResponse response = _store.Range(new RangeRequest { Key = MvccWorkload.Key(keys, index) });
            bytes += response.Kvs.Count == 1 ? response.Kvs[0].Value.Length : 0;
        }

        return bytes;
    }

    public long RangeEach(byte[] keys, int[] starts, int length)
    {
        long seen = 0;
        foreach (int start in starts)
        {
            RangeResponse response = _store.Range(new RangeRequest
            {
                Key = MvccWorkload.Key(keys, start),
                RangeEnd = MvccWorkload.Key(keys, start + length),
            });
            seen += response.Kvs.Count;
        }

        return seen;
    }

    /// <summary>Closes the store and opens it again: Open rebuilds the key index from the B+tree.</summary>
    public async Task ReopenAsync()
    {
        await _store.DisposeAsync().ConfigureAwait(false);
        _store = MvccStore.Open(_directory, Options);
    }

    public async Task<long> CloseCountingCommitsAsync()
    {
        await _store.DisposeAsync().ConfigureAwait(false);
        return ReadTxid(_directory) - _openedTxid;
    }

    public ValueTask DisposeAsync() => _store.DisposeAsync();

    /// <summary>The last commit's id in a closed store's B+tree file (the store does not expose its B+tree).</summary>
    private static long ReadTxid(string directory)
    {
        using var db = BTreeDatabase.Open(PhysicalFileSystem.Instance, Path.Combine(directory, "mvcc.db"), Options.BTree);
        return db.GetStatistics().Txid;
    }
}
