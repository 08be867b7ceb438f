using System.Text;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>Short ways to build requests and open stores on the simulated disk.</summary>
internal static class StoreTestSupport
{
    public const string Directory = "/data/mvcc";

    public static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    public static string S(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    public static MvccStore OpenOn(FaultInjectingFileSystem fs, MvccStoreOptions? options = null) => MvccStore.Open(fs, Directory, options);

    public static PutResponse Put(this MvccStore store, string key, string value, long lease = 0, bool prevKv = false) =>
        store.PutAsync(new PutRequest { Key = B(key), Value = B(value), Lease = lease, PrevKv = prevKv }).AsTask().GetAwaiter().GetResult();

    public static DeleteRangeResponse Delete(this MvccStore store, string key, string? rangeEnd = null, bool prevKv = false) =>
        store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(key), RangeEnd = rangeEnd is null ? default : B(rangeEnd), PrevKv = prevKv }).AsTask().GetAwaiter().GetResult();

    public static RangeResponse Get(this MvccStore store, string key, long revision = 0) =>
        store.Range(new RangeRequest { Key = B(key), Revision = revision });

    public static TxnResponse Txn(this MvccStore store, TxnRequest request) => store.TxnAsync(request).AsTask().GetAwaiter().GetResult();

    public static CompactResponse Compact(this MvccStore store, long revision, bool physical = true) =>
        store.CompactAsync(revision, physical).AsTask().GetAwaiter().GetResult();
}
