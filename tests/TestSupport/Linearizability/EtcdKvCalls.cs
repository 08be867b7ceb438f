using System.Text;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Runs an <see cref="EtcdKvRequest"/> through a replicated store member's public API and converts
/// the answer for <see cref="EtcdKvModel"/>: the one mapping between the model's operations and the
/// store's requests, shared by the simulator and the threaded Jepsen-style check.
/// </summary>
public static class EtcdKvCalls
{
    public static async Task<EtcdKvResponse> ExecuteAsync(ReplicatedStore member, EtcdKvRequest request, ReadConsistency consistency)
    {
        if (request.Compares.Count == 0 && request.Failure.Count == 0 && request.Success.Count == 1)
        {
            EtcdKvOperation op = request.Success[0];
            switch (op.Kind)
            {
                case EtcdKvOperationKind.Put:
                    var put = await member.PutAsync(new PutRequest { Key = Bytes(op.Key), Value = Bytes(op.Value!), Lease = op.Lease });
                    return new EtcdKvResponse(put.Header.Revision, true, [EtcdKvOperationResult.PutDone]);
                case EtcdKvOperationKind.DeleteRange:
                    var deleted = await member.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes(op.Key), RangeEnd = RangeEnd(op) });
                    return new EtcdKvResponse(deleted.Header.Revision, true, [new EtcdKvOperationResult([], deleted.Deleted)]);
                default:
                    var range = await member.RangeAsync(ToRange(op), consistency);
                    return new EtcdKvResponse(range.Header.Revision, true, [ToResult(range)]);
            }
        }

        var txn = await member.TxnAsync(new TxnRequest
        {
            Compare = request.Compares.Select(c => new Compare
            {
                Key = Bytes(c.Key),
                Target = CompareTarget.Value,
                Result = CompareResult.Equal,
                Value = Bytes(c.Value!),
            }).ToArray(),
            Success = request.Success.Select(ToRequestOp).ToArray(),
            Failure = request.Failure.Select(ToRequestOp).ToArray(),
        });
        var results = txn.Responses.Select(r => r.ResponseRange is { } rr ? ToResult(rr)
            : r.ResponseDeleteRange is { } rd ? new EtcdKvOperationResult([], rd.Deleted)
            : EtcdKvOperationResult.PutDone).ToArray();
        return new EtcdKvResponse(txn.Header.Revision, txn.Succeeded, results);
    }

    public static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    public static string Text(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    private static RequestOp ToRequestOp(EtcdKvOperation op) => op.Kind switch
    {
        EtcdKvOperationKind.Put => RequestOp.Put(new PutRequest { Key = Bytes(op.Key), Value = Bytes(op.Value!) }),
        EtcdKvOperationKind.DeleteRange => RequestOp.DeleteRange(new DeleteRangeRequest { Key = Bytes(op.Key), RangeEnd = RangeEnd(op) }),
        _ => RequestOp.Range(ToRange(op)),
    };

    private static RangeRequest ToRange(EtcdKvOperation op) => new() { Key = Bytes(op.Key), RangeEnd = RangeEnd(op) };

    private static ReadOnlyMemory<byte> RangeEnd(EtcdKvOperation op) => op.RangeEnd is null ? default : Bytes(op.RangeEnd);

    private static EtcdKvOperationResult ToResult(RangeResponse range) =>
        new(range.Kvs.Select(kv => new EtcdKeyValue(Text(kv.Key), Text(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version)).ToArray(), 0);
}
