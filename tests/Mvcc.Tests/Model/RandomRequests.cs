namespace EmbeddedRaft.Mvcc.Tests.Model;

/// <summary>Random etcd requests over a small key space, so keys collide, ranges overlap and histories grow long.</summary>
internal sealed class RandomRequests(Random random)
{
    private static readonly string[] s_keys = ["a", "ab", "abc", "b", "ba", "c", "cd", "d", "e", "\u00ff", "\u00ff\u00ff", "f\u00ff"];

    public ReadOnlyMemory<byte> Key() => ReferenceModel.Bytes(s_keys[random.Next(s_keys.Length)]);

    public ReadOnlyMemory<byte> Value() => ReferenceModel.Bytes(random.Next(4) == 0 ? "" : ((char)('p' + random.Next(6))).ToString() + random.Next(100));

    /// <summary>A key and range end: single key, [key, end), a prefix, from key, or everything.</summary>
    public (ReadOnlyMemory<byte> Key, ReadOnlyMemory<byte> End) Range()
    {
        var key = Key();
        return random.Next(6) switch
        {
            0 or 1 => (key, default),
            2 => (key, Key()),
            3 => (key, KeyRange.PrefixEnd(key.Span)),
            4 => (key, KeyRange.AllKeysFrom()),
            _ => (new byte[] { 0 }, KeyRange.AllKeysFrom()),
        };
    }

    public long Revision(long current, long compact) => random.Next(5) switch
    {
        0 => Math.Max(0, compact - random.Next(3)),
        1 => current + random.Next(1, 3),
        2 => Math.Max(1, current - random.Next(20)),
        _ => 0,
    };

    public RangeRequest RangeRequest(long current, long compact)
    {
        var (key, end) = Range();
        bool sort = random.Next(4) == 0;
        bool filter = random.Next(5) == 0;
        return new RangeRequest
        {
            Key = key,
            RangeEnd = end,
            Limit = random.Next(3) == 0 ? random.Next(1, 4) : 0,
            Revision = Revision(current, compact),
            SortOrder = sort ? (SortOrder)random.Next(3) : SortOrder.None,
            SortTarget = sort ? (SortTarget)random.Next(5) : SortTarget.Key,
            KeysOnly = random.Next(6) == 0,
            CountOnly = random.Next(10) == 0,
            MinModRevision = filter ? Math.Max(0, current - random.Next(10)) : 0,
            MaxModRevision = filter && random.Next(2) == 0 ? Math.Max(1, current - random.Next(5)) : 0,
            MinCreateRevision = filter && random.Next(3) == 0 ? Math.Max(0, current - random.Next(30)) : 0,
            MaxCreateRevision = filter && random.Next(3) == 0 ? Math.Max(0, current - random.Next(5)) : 0,
        };
    }

    public PutRequest Put()
    {
        bool ignoreValue = random.Next(10) == 0;
        bool ignoreLease = random.Next(10) == 0;
        return new PutRequest
        {
            Key = Key(),
            Value = ignoreValue ? default : Value(),
            Lease = ignoreLease ? 0 : random.Next(4) == 0 ? random.Next(1, 4) : 0,
            PrevKv = random.Next(2) == 0,
            IgnoreValue = ignoreValue,
            IgnoreLease = ignoreLease,
        };
    }

    public DeleteRangeRequest Delete()
    {
        var (key, end) = Range();
        return new DeleteRangeRequest { Key = key, RangeEnd = end, PrevKv = random.Next(2) == 0 };
    }

    public Compare Compare(long current)
    {
        var target = (CompareTarget)random.Next(5);
        var (key, end) = random.Next(4) == 0 ? Range() : (Key(), default);
        return new Compare
        {
            Key = key,
            RangeEnd = end,
            Target = target,
            Result = (CompareResult)random.Next(4),
            Version = random.Next(4),
            CreateRevision = Math.Max(0, current - random.Next(10)),
            ModRevision = Math.Max(0, current - random.Next(10)),
            Value = Value(),
            Lease = random.Next(3),
        };
    }

    public TxnRequest Txn(long current, long compact, int depth = 0)
    {
        List<RequestOp> Ops()
        {
            var ops = new List<RequestOp>();
            int count = random.Next(0, 5);
            for (int i = 0; i < count; i++)
            {
                ops.Add(random.Next(10) switch
                {
                    < 3 => RequestOp.Put(Put()),
                    < 6 => RequestOp.Range(RangeRequest(current, compact)),
                    < 8 => RequestOp.DeleteRange(Delete()),
                    _ => depth < 2 ? RequestOp.Txn(Txn(current, compact, depth + 1)) : RequestOp.Put(Put()),
                });
            }

            return ops;
        }

        var compares = Enumerable.Range(0, random.Next(0, 3)).Select(_ => Compare(current)).ToList();
        return new TxnRequest { Compare = compares, Success = Ops(), Failure = Ops() };
    }
}
