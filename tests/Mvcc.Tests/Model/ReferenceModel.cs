using System.Text;

namespace EmbeddedRaft.Mvcc.Tests.Model;

/// <summary>
/// A deliberately simple model of etcd's KV semantics, written from etcd's documented behaviour and
/// independent of the store's code: every key's full history (never pruned) in a dictionary, and
/// each request answered by scanning it. Compaction only moves the compact revision: the model
/// answers every read at or above it from the full history, which is what compaction must preserve.
/// </summary>
internal sealed class ReferenceModel(int maxTxnOps)
{
    private readonly Dictionary<string, List<Entry>> _history = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _keys = new(StringComparer.Ordinal);

    public long Revision { get; private set; } = 1;

    public long CompactRevision { get; private set; } = -1;

    public static string K(ReadOnlyMemory<byte> key) => Encoding.Latin1.GetString(key.Span);

    public static byte[] Bytes(string key) => Encoding.Latin1.GetBytes(key);

    // ------------------------------------------------------------------ reads

    public RangeResponse Range(RangeRequest r)
    {
        if (r.Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        if (r.Revision > Revision)
        {
            throw new FutureRevisionException(r.Revision, Revision);
        }

        long at = r.Revision <= 0 ? Revision : r.Revision;
        if (at < CompactRevision)
        {
            throw new RevisionCompactedException(at, CompactRevision);
        }

        return RangeAt(r, at, Revision);
    }

    private RangeResponse RangeAt(RangeRequest r, long at, long header)
    {
        var all = KeysIn(r.Key, r.RangeEnd).Select(k => At(k, at)).Where(kv => kv is not null).Select(kv => kv!).ToList();
        if (r.CountOnly)
        {
            return new RangeResponse { Header = new ResponseHeader { Revision = header }, Kvs = [], Count = all.Count };
        }

        // etcd's quirk: with no sort order and no filter, only limit + 1 keys (in key order) are
        // fetched before a non-key target sorts them.
        bool fetchAll = r.SortOrder != SortOrder.None || r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0;
        var fetched = !fetchAll && r.Limit > 0 ? all.Take((int)r.Limit + 1) : all;
        var kvs = fetched.Where(kv =>
            (r.MinModRevision == 0 || kv.ModRevision >= r.MinModRevision) && (r.MaxModRevision == 0 || kv.ModRevision <= r.MaxModRevision)
            && (r.MinCreateRevision == 0 || kv.CreateRevision >= r.MinCreateRevision) && (r.MaxCreateRevision == 0 || kv.CreateRevision <= r.MaxCreateRevision)).ToList();
        var order = r.SortOrder == SortOrder.None && r.SortTarget != SortTarget.Key ? SortOrder.Ascend : r.SortOrder;
        if (order != SortOrder.None)
        {
            Func<KeyValue, string> text = r.SortTarget switch
            {
                SortTarget.Key => kv => K(kv.Key),
                SortTarget.Value => kv => K(kv.Value),
                _ => _ => "",
            };
            Func<KeyValue, long> number = r.SortTarget switch
            {
                SortTarget.Version => kv => kv.Version,
                SortTarget.Create => kv => kv.CreateRevision,
                SortTarget.Mod => kv => kv.ModRevision,
                _ => _ => 0,
            };
            kvs = order == SortOrder.Ascend
                ? [.. kvs.OrderBy(text, StringComparer.Ordinal).ThenBy(number)]
                : [.. kvs.OrderByDescending(text, StringComparer.Ordinal).ThenByDescending(number)];
        }

        bool more = false;
        if (r.Limit > 0 && kvs.Count > r.Limit)
        {
            kvs = kvs.Take((int)r.Limit).ToList();
            more = true;
        }

        if (r.KeysOnly)
        {
            kvs = kvs.Select(kv => new KeyValue { Key = kv.Key, CreateRevision = kv.CreateRevision, ModRevision = kv.ModRevision, Version = kv.Version, Lease = kv.Lease }).ToList();
        }

        return new RangeResponse { Header = new ResponseHeader { Revision = header }, Kvs = kvs, More = more, Count = all.Count };
    }

    // ------------------------------------------------------------------ writes

    public PutResponse Put(PutRequest p)
    {
        CheckPutShape(p);
        if ((p.IgnoreValue || p.IgnoreLease) && At(K(p.Key), Revision) is null)
        {
            throw new MvccException(MvccError.KeyNotFound);
        }

        var w = new ModelTxn(this);
        var response = w.Put(p);
        w.End();
        return response;
    }

    public DeleteRangeResponse DeleteRange(DeleteRangeRequest d)
    {
        if (d.Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        var w = new ModelTxn(this);
        var response = w.Delete(d);
        w.End();
        return response;
    }

    public TxnResponse Txn(TxnRequest t)
    {
        CheckTxnShape(t, maxTxnOps);
        var w = new ModelTxn(this);

        // Which branch each (nested) txn takes, judged before any write, in pre-order.
        var path = new List<bool>();
        void Decide(TxnRequest txn)
        {
            bool ok = txn.Compare.All(w.Holds);
            path.Add(ok);
            foreach (var op in ok ? txn.Success : txn.Failure)
            {
                if (op.RequestTxn is { } nested)
                {
                    Decide(nested);
                }
            }
        }

        Decide(t);
        var chosen = new List<RequestOp>();
        int cursor = 0;
        void Flatten(TxnRequest txn)
        {
            foreach (var op in path[cursor++] ? txn.Success : txn.Failure)
            {
                if (op.RequestTxn is { } nested)
                {
                    Flatten(nested);
                }
                else
                {
                    chosen.Add(op);
                }
            }
        }

        Flatten(t);
        foreach (var op in chosen)
        {
            if (op.RequestPut is { } p && (p.IgnoreValue || p.IgnoreLease) && At(K(p.Key), Revision) is null)
            {
                throw new MvccException(MvccError.KeyNotFound);
            }
        }

        foreach (var op in chosen)
        {
            if (op.RequestRange is { Revision: > 0 } r)
            {
                if (r.Revision > Revision)
                {
                    throw new FutureRevisionException(r.Revision, Revision);
                }

                if (r.Revision < CompactRevision)
                {
                    throw new RevisionCompactedException(r.Revision, CompactRevision);
                }
            }
        }

        cursor = 0;
        TxnResponse Run(TxnRequest txn, bool nested)
        {
            bool ok = path[cursor++];
            var responses = new List<ResponseOp>();
            foreach (var op in ok ? txn.Success : txn.Failure)
            {
                responses.Add(op switch
                {
                    { RequestRange: { } r } => new ResponseOp { ResponseRange = RangeAt(r, r.Revision == 0 ? w.ReadRevision : r.Revision, w.ReadRevision) },
                    { RequestPut: { } p } => new ResponseOp { ResponsePut = w.Put(p) },
                    { RequestDeleteRange: { } d } => new ResponseOp { ResponseDeleteRange = w.Delete(d) },
                    { RequestTxn: { } n } => new ResponseOp { ResponseTxn = Run(n, nested: true) },
                    _ => throw new InvalidOperationException(),
                });
            }

            return new TxnResponse { Header = new ResponseHeader { Revision = nested ? 0 : w.ReadRevision }, Succeeded = ok, Responses = responses };
        }

        var result = Run(t, nested: false);
        w.End();
        return result;
    }

    public CompactResponse Compact(long revision)
    {
        if (revision <= CompactRevision)
        {
            throw new RevisionCompactedException(revision, CompactRevision);
        }

        if (revision > Revision)
        {
            throw new FutureRevisionException(revision, Revision);
        }

        CompactRevision = revision;
        return new CompactResponse { Header = new ResponseHeader { Revision = Revision } };
    }

    /// <summary>True when some key is written twice, or written and deleted, anywhere in the txn tree (branches not told apart): etcd may refuse it.</summary>
    public static bool MayHaveDuplicateKeys(TxnRequest t)
    {
        var puts = new List<string>();
        var deletes = new List<(string Begin, string? End)>();
        void Walk(TxnRequest txn)
        {
            foreach (var op in txn.Success.Concat(txn.Failure))
            {
                if (op.RequestPut is { } p)
                {
                    puts.Add(K(p.Key));
                }
                else if (op.RequestDeleteRange is { } d)
                {
                    deletes.Add((K(d.Key), d.RangeEnd.IsEmpty ? K(d.Key) + "\0" : (d.RangeEnd.Length == 1 && d.RangeEnd.Span[0] == 0) ? null : K(d.RangeEnd)));
                }
                else if (op.RequestTxn is { } n)
                {
                    Walk(n);
                }
            }
        }

        Walk(t);
        return puts.Count != puts.Distinct(StringComparer.Ordinal).Count()
            || puts.Any(p => deletes.Any(d => string.CompareOrdinal(d.Begin, p) <= 0 && (d.End is null || string.CompareOrdinal(p, d.End) < 0)));
    }

    // ------------------------------------------------------------------ history

    /// <summary>The key as of revision <paramref name="at"/>, or null when it did not exist.</summary>
    public KeyValue? At(string key, long at)
    {
        if (!_history.TryGetValue(key, out var entries))
        {
            return null;
        }

        Entry? last = null;
        foreach (var e in entries)
        {
            if (e.Main <= at)
            {
                last = e;
            }
        }

        return last is { Deleted: false } x
            ? new KeyValue { Key = Bytes(key), CreateRevision = x.Create, ModRevision = x.Main, Version = x.Version, Value = x.Value, Lease = x.Lease }
            : null;
    }

    /// <summary>How many changes (puts and deletes) revision <paramref name="at"/> made.</summary>
    public long ChangesAt(long at) => _history.Values.Sum(entries => entries.Count(e => e.Main == at));

    /// <summary>Every live key at <paramref name="at"/>.</summary>
    public IEnumerable<KeyValue> All(long at) => _keys.Select(k => At(k, at)).Where(kv => kv is not null).Select(kv => kv!);

    private IEnumerable<string> KeysIn(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> rangeEnd)
    {
        string begin = K(key);
        if (rangeEnd.IsEmpty)
        {
            return _keys.Contains(begin) ? [begin] : [];
        }

        bool toEnd = rangeEnd.Length == 1 && rangeEnd.Span[0] == 0;
        string end = K(rangeEnd);
        return _keys.Where(k => string.CompareOrdinal(k, begin) >= 0 && (toEnd || string.CompareOrdinal(k, end) < 0));
    }

    private static void CheckPutShape(PutRequest p)
    {
        if (p.Key.IsEmpty)
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        if (p.IgnoreValue && !p.Value.IsEmpty)
        {
            throw new MvccException(MvccError.ValueProvided);
        }

        if (p.IgnoreLease && p.Lease != 0)
        {
            throw new MvccException(MvccError.LeaseProvided);
        }
    }

    private static void CheckTxnShape(TxnRequest t, int budget)
    {
        int ops = Math.Max(t.Compare.Count, Math.Max(t.Success.Count, t.Failure.Count));
        if (ops > budget)
        {
            throw new MvccException(MvccError.TooManyOps);
        }

        if (t.Compare.Any(c => c.Key.IsEmpty))
        {
            throw new MvccException(MvccError.EmptyKey);
        }

        foreach (var op in t.Success.Concat(t.Failure))
        {
            switch (op)
            {
                case { RequestRange: { } r } when r.Key.IsEmpty:
                    throw new MvccException(MvccError.EmptyKey);
                case { RequestPut: { } p }:
                    CheckPutShape(p);
                    break;
                case { RequestDeleteRange: { } d } when d.Key.IsEmpty:
                    throw new MvccException(MvccError.EmptyKey);
                case { RequestTxn: { } n }:
                    CheckTxnShape(n, budget - ops);
                    break;
            }
        }
    }

    private void Append(string key, Entry entry)
    {
        if (!_history.TryGetValue(key, out var entries))
        {
            _history[key] = entries = [];
            _keys.Add(key);
        }

        entries.Add(entry);
    }

    private sealed record Entry(long Main, long Sub, bool Deleted, byte[] Value, long Lease, long Create, long Version);

    /// <summary>One write transaction of the model: all writes at Revision + 1.</summary>
    private sealed class ModelTxn(ReferenceModel model)
    {
        private readonly long _begin = model.Revision;
        private int _changes;

        public long ReadRevision => _begin + (_changes > 0 ? 1 : 0);

        public bool Holds(Compare c)
        {
            var kvs = model.KeysIn(c.Key, c.RangeEnd).Select(k => model.At(k, ReadRevision)).Where(kv => kv is not null).ToList();
            if (kvs.Count == 0)
            {
                return c.Target != CompareTarget.Value && Test(c, new KeyValue());
            }

            return kvs.All(kv => Test(c, kv!));
        }

        private static bool Test(Compare c, KeyValue kv)
        {
            int cmp = c.Target switch
            {
                CompareTarget.Version => kv.Version.CompareTo(c.Version),
                CompareTarget.Create => kv.CreateRevision.CompareTo(c.CreateRevision),
                CompareTarget.Mod => kv.ModRevision.CompareTo(c.ModRevision),
                CompareTarget.Value => string.CompareOrdinal(K(kv.Value), K(c.Value)),
                _ => kv.Lease.CompareTo(c.Lease),
            };
            return c.Result switch
            {
                CompareResult.Equal => cmp == 0,
                CompareResult.NotEqual => cmp != 0,
                CompareResult.Greater => cmp > 0,
                _ => cmp < 0,
            };
        }

        public PutResponse Put(PutRequest p)
        {
            string key = K(p.Key);
            var previous = model.At(key, ReadRevision);
            byte[] value = p.IgnoreValue ? previous?.Value.ToArray() ?? [] : p.Value.ToArray();
            long lease = p.IgnoreLease ? previous?.Lease ?? 0 : p.Lease;
            long main = _begin + 1;
            var current = model.At(key, main);
            model.Append(key, new Entry(main, _changes++, false, value, lease, current?.CreateRevision ?? main, (current?.Version ?? 0) + 1));
            return new PutResponse { Header = new ResponseHeader { Revision = main }, PrevKv = p.PrevKv ? previous : null };
        }

        public DeleteRangeResponse Delete(DeleteRangeRequest d)
        {
            var victims = model.KeysIn(d.Key, d.RangeEnd).Select(k => model.At(k, ReadRevision)).Where(kv => kv is not null).Select(kv => kv!).ToList();
            foreach (var kv in victims)
            {
                model.Append(K(kv.Key), new Entry(_begin + 1, _changes++, true, [], 0, 0, 0));
            }

            long header = _changes > 0 ? _begin + 1 : _begin;
            return new DeleteRangeResponse { Header = new ResponseHeader { Revision = header }, Deleted = victims.Count, PrevKvs = d.PrevKv ? victims : [] };
        }

        public void End()
        {
            if (_changes > 0)
            {
                model.Revision = _begin + 1;
            }
        }
    }
}
