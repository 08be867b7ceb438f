namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The size etcd gives a write request when it checks <c>--max-request-bytes</c>: the protobuf
/// encoding of the request inside its Raft request wrapper. Field numbers are etcd's
/// (rpc.proto); <see cref="WrapperBytes"/> stands for the wrapper's header and tag, which vary by
/// a few bytes with the request id, so a request within a few bytes of the limit may be judged
/// differently than etcd would.
/// </summary>
internal static class RequestSize
{
    /// <summary>The Raft request wrapper: a two-byte tag and a length for the request, and a header holding a 64-bit id.</summary>
    public const int WrapperBytes = 16;

    public static long OfPut(PutRequest r) =>
        Bytes(1, r.Key.Length) + Bytes(1, r.Value.Length) + Int(1, r.Lease) + Bool(r.PrevKv) + Bool(r.IgnoreValue) + Bool(r.IgnoreLease);

    public static long OfDeleteRange(DeleteRangeRequest r) =>
        Bytes(1, r.Key.Length) + Bytes(1, r.RangeEnd.Length) + Bool(r.PrevKv);

    public static long OfRange(RangeRequest r) =>
        Bytes(1, r.Key.Length) + Bytes(1, r.RangeEnd.Length) + Int(1, r.Limit) + Int(1, r.Revision) + Int(1, (long)r.SortOrder)
        + Int(1, (long)r.SortTarget) + Bool(r.KeysOnly) + Bool(r.CountOnly) + Int(1, r.MinModRevision) + Int(1, r.MaxModRevision)
        + Int(1, r.MinCreateRevision) + Int(1, r.MaxCreateRevision);

    public static long OfCompare(Compare c)
    {
        // The target's value is a oneof member: encoded whenever it is the one set, even when zero.
        long target = c.Target switch
        {
            CompareTarget.Version => 1 + Varint(c.Version),
            CompareTarget.Create => 1 + Varint(c.CreateRevision),
            CompareTarget.Mod => 1 + Varint(c.ModRevision),
            CompareTarget.Value => Message(1, c.Value.Length),
            _ => 1 + Varint(c.Lease),
        };
        return Int(1, (long)c.Result) + Int(1, (long)c.Target) + Bytes(1, c.Key.Length) + target + Bytes(2, c.RangeEnd.Length);
    }

    public static long OfTxn(TxnRequest r)
    {
        long size = 0;
        foreach (var compare in r.Compare)
        {
            size += Message(1, OfCompare(compare));
        }

        foreach (var op in r.Success)
        {
            size += Message(1, OfOp(op));
        }

        foreach (var op in r.Failure)
        {
            size += Message(1, OfOp(op));
        }

        return size;
    }

    private static long OfOp(RequestOp op) => op switch
    {
        { RequestRange: { } range } => Message(1, OfRange(range)),
        { RequestPut: { } put } => Message(1, OfPut(put)),
        { RequestDeleteRange: { } delete } => Message(1, OfDeleteRange(delete)),
        { RequestTxn: { } txn } => Message(1, OfTxn(txn)),
        _ => 0,
    };

    private static long Bytes(int tagBytes, long length) => length == 0 ? 0 : Message(tagBytes, length);

    private static long Message(int tagBytes, long length) => tagBytes + Varint(length) + length;

    private static long Int(int tagBytes, long value) => value == 0 ? 0 : tagBytes + Varint(value);

    private static long Bool(bool value) => value ? 2 : 0;

    // Protobuf encodes negative int64 values in ten bytes.
    private static long Varint(long value) => Leb128.Size(unchecked((ulong)value));
}
