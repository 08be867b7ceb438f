using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>The replicated store's command encoding: exact round trips, and every malformed input refused with a clear error.</summary>
public sealed class CommandCodecTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("REPLICATION_SEED", "REPLICATION_SOAK_SEEDS", 2300, 2);

    [TestCaseSource(nameof(Seeds))]
    public void EveryRequestKindRoundTripsExactlyAndEveryTruncationOrExtraByteIsRefused(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: REPLICATION_SEED={seed})");
        var random = new Random(seed);
        var reused = new PutRequest(); // the apply path's decode into a request it refills put after put
        for (int i = 0; i < 60; i++)
        {
            var put = RandomPut(random);
            var encodedPut = CommandCodec.EncodePut(put);
            Assert.That(Describe(CommandCodec.DecodePut(encodedPut.Span)), Is.EqualTo(Describe(put)));
            AssertRefusesDamage(random, encodedPut, bytes => CommandCodec.DecodePut(bytes));
            Assert.That(Describe(DecodeWithoutCopying(encodedPut)), Is.EqualTo(Describe(put)));
            AssertRefusesDamage(random, encodedPut, bytes => DecodeWithoutCopying(bytes));
            CommandCodec.DecodePutWithoutCopying(encodedPut, reused);
            Assert.That(Describe(reused), Is.EqualTo(Describe(put)), "a put decoded into the request the previous put was decoded into");

            var delete = new DeleteRangeRequest { Key = Bytes(random, 1, 20), RangeEnd = Bytes(random, 0, 20), PrevKv = random.Next(2) == 0 };
            var encodedDelete = CommandCodec.EncodeDeleteRange(delete);
            var decodedDelete = CommandCodec.DecodeDeleteRange(encodedDelete.Span);
            Assert.That((Hex(decodedDelete.Key), Hex(decodedDelete.RangeEnd), decodedDelete.PrevKv), Is.EqualTo((Hex(delete.Key), Hex(delete.RangeEnd), delete.PrevKv)));
            AssertRefusesDamage(random, encodedDelete, bytes => CommandCodec.DecodeDeleteRange(bytes));

            var txn = RandomTxn(random, depth: 0);
            var encodedTxn = CommandCodec.EncodeTxn(txn);
            Assert.That(Describe(CommandCodec.DecodeTxn(encodedTxn.Span)), Is.EqualTo(Describe(txn)));
            AssertRefusesDamage(random, encodedTxn, bytes => CommandCodec.DecodeTxn(bytes));

            long revision = random.NextInt64(0, long.MaxValue);
            bool physical = random.Next(2) == 0;
            var encodedCompact = CommandCodec.EncodeCompact(revision, physical);
            Assert.That(CommandCodec.DecodeCompact(encodedCompact.Span), Is.EqualTo((revision, physical)));
            AssertRefusesDamage(random, encodedCompact, bytes => CommandCodec.DecodeCompact(bytes));

            var member = new MemberInfo((ulong)random.NextInt64(1, long.MaxValue), $"m{random.Next()}", [$"tcp://h{random.Next(9)}:{random.Next(1, 65536)}"], [$"http://c:{random.Next(1, 65536)}"], random.Next(2) == 0);
            var encodedMember = CommandCodec.EncodeMemberPut(member);
            Assert.That(CommandCodec.DecodeMemberPut(encodedMember.Span), Is.EqualTo(member));
            AssertRefusesDamage(random, encodedMember, bytes => CommandCodec.DecodeMemberPut(bytes));
        }
    }

    [Test]
    public void AWrongKindAnUndefinedEnumAndAnOverlongLengthAreRefusedNamingTheProblem()
    {
        var put = CommandCodec.EncodePut(new PutRequest { Key = "k"u8.ToArray(), Value = "v"u8.ToArray() }).ToArray();
        var wrongKind = Assert.Throws<InvalidDataException>(() => CommandCodec.DecodeDeleteRange(put));
        Assert.That(wrongKind!.Message, Does.Contain("expected DeleteRange"));
        Assert.Throws<InvalidDataException>(() => CommandCodec.KindOf([]));

        var txn = CommandCodec.EncodeTxn(new TxnRequest { Compare = [new Compare { Key = "k"u8.ToArray(), Target = CompareTarget.Mod, Result = CompareResult.Less }] }).ToArray();
        txn[2] = 9; // the compare's result byte
        var badEnum = Assert.Throws<InvalidDataException>(() => CommandCodec.DecodeTxn(txn));
        Assert.That(badEnum!.Message, Does.Contain("CompareResult"));

        var overlong = put.ToArray();
        overlong[1] = 0x7F; // the key's length: 127 bytes, far past the end
        var length = Assert.Throws<InvalidDataException>(() => CommandCodec.DecodePut(overlong));
        Assert.That(length!.Message, Does.Contain("put key"));
    }

    [Test]
    public void ThePutDecodedWithoutCopyingSlicesItsKeyAndValueFromTheCommand()
    {
        var command = CommandCodec.EncodePut(new PutRequest { Key = "key"u8.ToArray(), Value = "value"u8.ToArray(), Lease = 7, PrevKv = true }).ToArray();

        var put = DecodeWithoutCopying(command);

        Assert.That((Hex(put.Key), Hex(put.Value), put.Lease, put.PrevKv), Is.EqualTo((Hex("key"u8.ToArray()), Hex("value"u8.ToArray()), 7L, true)));
        Assert.That(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(put.Value, out var segment) && segment.Array == command, Is.True, "the value is a slice of the command, not a copy");
        command[^5] ^= 0x20; // the value's 'l' (before its 'ue', the lease and the flags byte) -> 'L', seen through the slice
        Assert.That(System.Text.Encoding.ASCII.GetString(put.Value.Span), Is.EqualTo("vaLue"));
    }

    [Test]
    public void TransactionsNestedTooDeepAreRefusedBeforeTheyReachTheLog()
    {
        var txn = new TxnRequest();
        for (int i = 0; i < CommandCodec.MaxTxnDepth + 1; i++)
        {
            txn = new TxnRequest { Success = [RequestOp.Txn(txn)] };
        }

        var refused = Assert.Throws<MvccException>(() => CommandCodec.EncodeTxn(txn));
        Assert.That(refused!.Message, Does.Contain("nested"));
    }

    /// <summary>Every truncation of a short command (and of a long one, 48 seeded cuts and the last 16) and one extra byte are refused.</summary>
    private static void AssertRefusesDamage(Random random, ReadOnlyMemory<byte> encoded, Action<byte[]> decode)
    {
        var bytes = encoded.ToArray();
        var cuts = bytes.Length <= 64
            ? Enumerable.Range(0, bytes.Length)
            : Enumerable.Range(0, 48).Select(_ => random.Next(bytes.Length)).Concat(Enumerable.Range(bytes.Length - 16, 16));
        foreach (int cut in cuts)
        {
            Assert.Throws<InvalidDataException>(() => decode(bytes[..cut]), $"truncated to {cut} of {bytes.Length} bytes");
        }

        Assert.Throws<InvalidDataException>(() => decode([.. bytes, 0]), "one byte too many");
    }

    private static PutRequest RandomPut(Random random) => new()
    {
        Key = Bytes(random, 1, 40),
        Value = Bytes(random, 0, 300),
        Lease = random.Next(3) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : 0,
        PrevKv = random.Next(2) == 0,
        IgnoreValue = random.Next(4) == 0,
        IgnoreLease = random.Next(4) == 0,
    };

    private static TxnRequest RandomTxn(Random random, int depth) => new()
    {
        Compare = Enumerable.Range(0, random.Next(4)).Select(_ => new Compare
        {
            Result = (CompareResult)random.Next(4),
            Target = (CompareTarget)random.Next(5),
            Key = Bytes(random, 1, 10),
            RangeEnd = Bytes(random, 0, 10),
            Version = random.NextInt64(-5, 1000),
            CreateRevision = random.NextInt64(0, long.MaxValue),
            ModRevision = random.NextInt64(long.MinValue, long.MaxValue),
            Value = Bytes(random, 0, 30),
            Lease = random.NextInt64(0, 100),
        }).ToArray(),
        Success = RandomOps(random, depth),
        Failure = RandomOps(random, depth),
    };

    private static RequestOp[] RandomOps(Random random, int depth) =>
        Enumerable.Range(0, random.Next(4)).Select(_ => random.Next(depth < 2 ? 4 : 3) switch
        {
            0 => RequestOp.Put(RandomPut(random)),
            1 => RequestOp.DeleteRange(new DeleteRangeRequest { Key = Bytes(random, 1, 10), RangeEnd = Bytes(random, 0, 10), PrevKv = random.Next(2) == 0 }),
            2 => RequestOp.Range(new RangeRequest
            {
                Key = Bytes(random, 1, 10),
                RangeEnd = Bytes(random, 0, 10),
                Limit = random.NextInt64(0, 100),
                Revision = random.NextInt64(0, 1000),
                SortOrder = (SortOrder)random.Next(3),
                SortTarget = (SortTarget)random.Next(5),
                KeysOnly = random.Next(2) == 0,
                CountOnly = random.Next(2) == 0,
                MinModRevision = random.NextInt64(0, 10),
                MaxModRevision = random.NextInt64(0, 10),
                MinCreateRevision = random.NextInt64(0, 10),
                MaxCreateRevision = random.NextInt64(0, 10),
            }),
            _ => RequestOp.Txn(RandomTxn(random, depth + 1)),
        }).ToArray();

    private static byte[] Bytes(Random random, int min, int max)
    {
        var bytes = new byte[random.Next(min, max + 1)];
        random.NextBytes(bytes);
        return bytes;
    }

    private static string Hex(ReadOnlyMemory<byte> bytes) => Convert.ToHexString(bytes.Span);

    private static string Describe(PutRequest p) => $"put {Hex(p.Key)}={Hex(p.Value)} l{p.Lease} {p.PrevKv}{p.IgnoreValue}{p.IgnoreLease}";

    private static string Describe(RangeRequest r) =>
        $"range {Hex(r.Key)}-{Hex(r.RangeEnd)} {r.Limit} {r.Revision} {r.SortOrder} {r.SortTarget} {r.KeysOnly}{r.CountOnly} {r.MinModRevision} {r.MaxModRevision} {r.MinCreateRevision} {r.MaxCreateRevision}";

    private static string Describe(TxnRequest t) =>
        "txn(" + string.Join(";", t.Compare.Select(c => $"{c.Result} {c.Target} {Hex(c.Key)}-{Hex(c.RangeEnd)} {c.Version} {c.CreateRevision} {c.ModRevision} {Hex(c.Value)} {c.Lease}"))
        + " ? " + string.Join(";", t.Success.Select(Describe)) + " : " + string.Join(";", t.Failure.Select(Describe)) + ")";

    private static string Describe(RequestOp op) =>
        op.RequestPut is { } p ? Describe(p)
        : op.RequestRange is { } r ? Describe(r)
        : op.RequestDeleteRange is { } d ? $"delete {Hex(d.Key)}-{Hex(d.RangeEnd)} {d.PrevKv}"
        : Describe(op.RequestTxn!);

    private static PutRequest DecodeWithoutCopying(ReadOnlyMemory<byte> command)
    {
        var request = new PutRequest();
        CommandCodec.DecodePutWithoutCopying(command, request);
        return request;
    }
}
