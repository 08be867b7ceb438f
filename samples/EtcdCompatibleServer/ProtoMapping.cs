using EmbeddedRaft.Mvcc;
using Google.Protobuf;
using Google.Protobuf.Collections;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using EtcdKv = EmbeddedRaft.Samples.EtcdCompatibleServer.Mvccpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// Converts between etcd's protobuf messages and the store's request and response types, which
/// mirror etcd's field for field (enums share etcd's numbers, so they convert by value).
/// </summary>
/// <remarks>
/// Bytes from a request are passed to the store without copying (the store copies what it keeps:
/// a write is encoded into a Raft command). Bytes of a response are wrapped without copying: the
/// store never reuses the memory of a key or value it has handed out.
/// </remarks>
internal static class ProtoMapping
{
    public static Etcd.ResponseHeader Header(ResponseHeader header) => new()
    {
        ClusterId = header.ClusterId,
        MemberId = header.MemberId,
        Revision = header.Revision,
        RaftTerm = header.RaftTerm,
    };

    public static RangeRequest ToStore(Etcd.RangeRequest request) => new()
    {
        Key = request.Key.Memory,
        RangeEnd = request.RangeEnd.Memory,
        Limit = request.Limit,
        Revision = request.Revision,
        SortOrder = (SortOrder)request.SortOrder,
        SortTarget = (SortTarget)request.SortTarget,
        KeysOnly = request.KeysOnly,
        CountOnly = request.CountOnly,
        MinModRevision = request.MinModRevision,
        MaxModRevision = request.MaxModRevision,
        MinCreateRevision = request.MinCreateRevision,
        MaxCreateRevision = request.MaxCreateRevision,
    };

    public static PutRequest ToStore(Etcd.PutRequest request) => new()
    {
        Key = request.Key.Memory,
        Value = request.Value.Memory,
        Lease = request.Lease,
        PrevKv = request.PrevKv,
        IgnoreValue = request.IgnoreValue,
        IgnoreLease = request.IgnoreLease,
    };

    public static DeleteRangeRequest ToStore(Etcd.DeleteRangeRequest request) => new()
    {
        Key = request.Key.Memory,
        RangeEnd = request.RangeEnd.Memory,
        PrevKv = request.PrevKv,
    };

    public static TxnRequest ToStore(Etcd.TxnRequest request) => new()
    {
        Compare = [.. request.Compare.Select(ToStore)],
        Success = [.. request.Success.Select(ToStore)],
        Failure = [.. request.Failure.Select(ToStore)],
    };

    public static Compare ToStore(Etcd.Compare compare) => new()
    {
        Result = (CompareResult)compare.Result,
        Target = (CompareTarget)compare.Target,
        Key = compare.Key.Memory,
        RangeEnd = compare.RangeEnd.Memory,
        // The oneof holds at most one of these; the unset ones read as 0 / empty, and the store
        // compares the one its Target names, as etcd does.
        Version = compare.Version,
        CreateRevision = compare.CreateRevision,
        ModRevision = compare.ModRevision,
        Value = compare.Value.Memory,
        Lease = compare.Lease,
    };

    public static RequestOp ToStore(Etcd.RequestOp op) => op.RequestCase switch
    {
        Etcd.RequestOp.RequestOneofCase.RequestRange => RequestOp.Range(ToStore(op.RequestRange)),
        Etcd.RequestOp.RequestOneofCase.RequestPut => RequestOp.Put(ToStore(op.RequestPut)),
        Etcd.RequestOp.RequestOneofCase.RequestDeleteRange => RequestOp.DeleteRange(ToStore(op.RequestDeleteRange)),
        Etcd.RequestOp.RequestOneofCase.RequestTxn => RequestOp.Txn(ToStore(op.RequestTxn)),
        // etcd's checkRequestOp lets an empty op through and its apply skips it; refusing it is
        // clearer than silently answering an op that did nothing.
        _ => throw EtcdErrors.Rpc(Grpc.Core.StatusCode.InvalidArgument, "etcdserver: a txn operation holds no request"),
    };

    public static EtcdKv.KeyValue? ToProto(KeyValue? kv) => kv is null ? null : new EtcdKv.KeyValue
    {
        Key = UnsafeByteOperations.UnsafeWrap(kv.Key),
        CreateRevision = kv.CreateRevision,
        ModRevision = kv.ModRevision,
        Version = kv.Version,
        Value = UnsafeByteOperations.UnsafeWrap(kv.Value),
        Lease = kv.Lease,
    };

    public static Etcd.RangeResponse ToProto(RangeResponse response)
    {
        var proto = new Etcd.RangeResponse { Header = Header(response.Header), More = response.More, Count = response.Count };
        AddAll(proto.Kvs, response.Kvs);
        return proto;
    }

    public static Etcd.PutResponse ToProto(PutResponse response) =>
        new() { Header = Header(response.Header), PrevKv = ToProto(response.PrevKv) };

    public static Etcd.DeleteRangeResponse ToProto(DeleteRangeResponse response)
    {
        var proto = new Etcd.DeleteRangeResponse { Header = Header(response.Header), Deleted = response.Deleted };
        AddAll(proto.PrevKvs, response.PrevKvs);
        return proto;
    }

    public static Etcd.TxnResponse ToProto(TxnResponse response)
    {
        var proto = new Etcd.TxnResponse { Header = Header(response.Header), Succeeded = response.Succeeded };
        foreach (ResponseOp op in response.Responses)
        {
            proto.Responses.Add(ToProto(op));
        }

        return proto;
    }

    /// <summary>
    /// A txn's nested response. etcd fills only the revision of a nested response's header (the
    /// txn's own header carries the ids and term), and clients that print responses show that.
    /// </summary>
    public static Etcd.ResponseOp ToProto(ResponseOp op)
    {
        if (op.ResponseRange is { } range)
        {
            Etcd.RangeResponse proto = ToProto(range);
            proto.Header = Nested(range.Header);
            return new Etcd.ResponseOp { ResponseRange = proto };
        }

        if (op.ResponsePut is { } put)
        {
            Etcd.PutResponse proto = ToProto(put);
            proto.Header = Nested(put.Header);
            return new Etcd.ResponseOp { ResponsePut = proto };
        }

        if (op.ResponseDeleteRange is { } delete)
        {
            Etcd.DeleteRangeResponse proto = ToProto(delete);
            proto.Header = Nested(delete.Header);
            return new Etcd.ResponseOp { ResponseDeleteRange = proto };
        }

        if (op.ResponseTxn is { } txn)
        {
            Etcd.TxnResponse proto = ToProto(txn);
            proto.Header = Nested(txn.Header);
            return new Etcd.ResponseOp { ResponseTxn = proto };
        }

        throw new InvalidOperationException("The store answered a txn operation with an empty ResponseOp.");
    }

    public static EtcdKv.Event ToProto(WatchEvent e, bool prevKv) => new()
    {
        Type = e.Type == WatchEventType.Put ? EtcdKv.Event.Types.EventType.Put : EtcdKv.Event.Types.EventType.Delete,
        Kv = ToProto(e.Kv),
        PrevKv = prevKv ? ToProto(e.PrevKv) : null,
    };

    private static Etcd.ResponseHeader Nested(ResponseHeader header) => new() { Revision = header.Revision };

    private static void AddAll(RepeatedField<EtcdKv.KeyValue> target, IReadOnlyList<KeyValue> kvs)
    {
        foreach (KeyValue kv in kvs)
        {
            target.Add(ToProto(kv)!);
        }
    }
}
