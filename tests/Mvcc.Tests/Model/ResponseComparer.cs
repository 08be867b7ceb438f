using System.Globalization;
using System.Text;

namespace EmbeddedRaft.Mvcc.Tests.Model;

/// <summary>Renders responses field by field, so two can be compared as text and a difference read in a failure message.</summary>
internal static class ResponseComparer
{
    public static string Show(object? response)
    {
        var text = new StringBuilder();
        Write(text, response);
        return text.ToString();
    }

    private static void Write(StringBuilder text, object? response)
    {
        switch (response)
        {
            case null:
                text.Append("null");
                break;
            case RangeResponse r:
                text.Append(CultureInfo.InvariantCulture, $"range(rev={r.Header.Revision} count={r.Count} more={r.More} kvs=[");
                foreach (var kv in r.Kvs)
                {
                    text.Append(kv).Append(' ');
                }

                text.Append("])");
                break;
            case PutResponse p:
                text.Append(CultureInfo.InvariantCulture, $"put(rev={p.Header.Revision} prev={p.PrevKv?.ToString() ?? "none"})");
                break;
            case DeleteRangeResponse d:
                text.Append(CultureInfo.InvariantCulture, $"delete(rev={d.Header.Revision} deleted={d.Deleted} prev=[");
                foreach (var kv in d.PrevKvs)
                {
                    text.Append(kv).Append(' ');
                }

                text.Append("])");
                break;
            case TxnResponse t:
                text.Append(CultureInfo.InvariantCulture, $"txn(rev={t.Header.Revision} ok={t.Succeeded} [");
                foreach (var op in t.Responses)
                {
                    Write(text, (object?)op.ResponseRange ?? (object?)op.ResponsePut ?? (object?)op.ResponseDeleteRange ?? op.ResponseTxn);
                    text.Append("; ");
                }

                text.Append("])");
                break;
            case CompactResponse c:
                text.Append(CultureInfo.InvariantCulture, $"compact(rev={c.Header.Revision})");
                break;
            case RevisionCompactedException e:
                text.Append(CultureInfo.InvariantCulture, $"error(compacted requested={e.RequestedRevision} compact={e.CompactRevision})");
                break;
            case FutureRevisionException e:
                text.Append(CultureInfo.InvariantCulture, $"error(future requested={e.RequestedRevision} current={e.CurrentRevision})");
                break;
            case MvccException e:
                text.Append(CultureInfo.InvariantCulture, $"error({e.Error}: {e.EtcdMessage} code={e.GrpcStatusCode})");
                break;
            case Exception e:
                text.Append(CultureInfo.InvariantCulture, $"unexpected {e.GetType().Name}: {e.Message}");
                break;
            default:
                text.Append(response);
                break;
        }
    }
}
