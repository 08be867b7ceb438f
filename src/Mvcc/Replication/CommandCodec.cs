namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The binary encoding of the commands a <see cref="ReplicatedStore"/> proposes: a
/// <see cref="CommandKind"/> byte, then the request's fields in a fixed order (layout in
/// docs/formats.md, "Replicated store commands"). Compact (varints, no field tags) because every
/// command is written to every member's log; exact (every field of the request round-trips) because
/// every member applies the decoded request, not the caller's object.
/// </summary>
/// <remarks>
/// Decoding checks everything and throws <see cref="InvalidDataException"/> naming the kind and the
/// offset: an unknown kind, a truncated field, an undefined enum value, a length past the end,
/// bytes left over, a transaction nested deeper than <see cref="MaxTxnDepth"/>. A command that
/// does not decode is never skipped: the store stops (see <see cref="ReplicatedStateMachine"/>).
/// </remarks>
internal static class CommandCodec
{
    /// <summary>Most levels of transactions nested in transactions a command may hold (etcd has no limit, but a request this deep is refused by its size first).</summary>
    public const int MaxTxnDepth = 32;

    private const byte OpRange = 1;
    private const byte OpPut = 2;
    private const byte OpDeleteRange = 3;
    private const byte OpTxn = 4;

    /// <summary>The kind of an encoded command.</summary>
    /// <exception cref="InvalidDataException">Empty.</exception>
    public static CommandKind KindOf(ReadOnlySpan<byte> command) =>
        command.IsEmpty ? throw new InvalidDataException("Replicated store command: empty (no kind byte).") : (CommandKind)command[0];

    public static ReadOnlyMemory<byte> EncodePut(PutRequest request)
    {
        var w = new CommandWriter(CommandKind.Put, 16 + request.Key.Length + request.Value.Length);
        WritePut(w, request);
        return w.Written;
    }

    /// <summary>
    /// Encodes a put as <see cref="EncodePut"/> does, into this thread's reused buffer (no array per
    /// put): the bytes returned are valid only until this thread encodes its next command, so the
    /// caller must copy them first — as <c>RaftNode.ProposeAsync</c> does before it returns.
    /// </summary>
    public static ReadOnlyMemory<byte> EncodePutReused(PutRequest request)
    {
        var w = CommandWriter.Reused(CommandKind.Put, 32 + request.Key.Length + request.Value.Length); // an upper bound of the encoding's size
        WritePut(w, request);
        return w.Written;
    }

    public static ReadOnlyMemory<byte> EncodeDeleteRange(DeleteRangeRequest request)
    {
        var w = new CommandWriter(CommandKind.DeleteRange, 16 + request.Key.Length + request.RangeEnd.Length);
        WriteDeleteRange(w, request);
        return w.Written;
    }

    public static ReadOnlyMemory<byte> EncodeTxn(TxnRequest request)
    {
        var w = new CommandWriter(CommandKind.Txn, 256);
        WriteTxn(w, request, 1);
        return w.Written;
    }

    public static ReadOnlyMemory<byte> EncodeCompact(long revision, bool physical)
    {
        var w = new CommandWriter(CommandKind.Compact, 16);
        w.WriteInt64(revision);
        w.WriteBool(physical);
        return w.Written;
    }

    public static ReadOnlyMemory<byte> EncodeMemberPut(MemberInfo member)
    {
        var w = new CommandWriter(CommandKind.MemberPut, 128);
        MemberRegistry.Write(w, member);
        return w.Written;
    }

    public static ReadOnlyMemory<byte> EncodeMemberRemove(ulong id)
    {
        var w = new CommandWriter(CommandKind.MemberRemove, 16);
        w.WriteUInt64(id);
        return w.Written;
    }

    public static PutRequest DecodePut(ReadOnlySpan<byte> command)
    {
        var r = Body(command, CommandKind.Put);
        var request = ReadPut(ref r);
        r.ExpectEnd("a put");
        return request;
    }

    /// <summary>
    /// Decodes a put into <paramref name="into"/> (a request its caller owns and refills put after
    /// put) with its key and value slices of <paramref name="command"/>, not copies: the apply path's
    /// decode (a put's value is most of its command, and every member decodes every put). Only for a
    /// caller that is done with the request while the command's bytes are unchanged: the replicated
    /// store applies a committed command before its apply completes, and the store copies what it
    /// keeps (the B+tree entry, the index's key). <paramref name="into"/> is unchanged when the
    /// command does not decode.
    /// </summary>
    /// <exception cref="InvalidDataException">As <see cref="DecodePut"/>.</exception>
    public static void DecodePutWithoutCopying(ReadOnlyMemory<byte> command, PutRequest into)
    {
        var r = Body(command.Span, CommandKind.Put);
        var body = command[1..];
        var key = body[r.ReadRange("put key")];
        var value = body[r.ReadRange("put value")];
        long lease = r.ReadInt64("put lease");
        var (prevKv, ignoreValue, ignoreLease) = ReadPutFlags(ref r);
        r.ExpectEnd("a put");
        into.Overwrite(key, value, lease, prevKv, ignoreValue, ignoreLease);
    }

    public static DeleteRangeRequest DecodeDeleteRange(ReadOnlySpan<byte> command)
    {
        var r = Body(command, CommandKind.DeleteRange);
        var request = ReadDeleteRange(ref r);
        r.ExpectEnd("a delete");
        return request;
    }

    public static TxnRequest DecodeTxn(ReadOnlySpan<byte> command)
    {
        var r = Body(command, CommandKind.Txn);
        var request = ReadTxn(ref r, 1);
        r.ExpectEnd("a txn");
        return request;
    }

    public static (long Revision, bool Physical) DecodeCompact(ReadOnlySpan<byte> command)
    {
        var r = Body(command, CommandKind.Compact);
        long revision = r.ReadInt64("compact revision");
        bool physical = r.ReadBool("compact physical flag");
        r.ExpectEnd("a compaction");
        return (revision, physical);
    }

    public static MemberInfo DecodeMemberPut(ReadOnlySpan<byte> command)
    {
        var r = Body(command, CommandKind.MemberPut);
        var member = MemberRegistry.Read(ref r);
        r.ExpectEnd("a member");
        return member;
    }

    public static ulong DecodeMemberRemove(ReadOnlySpan<byte> command)
    {
        var r = Body(command, CommandKind.MemberRemove);
        ulong id = r.ReadUInt64("member id");
        r.ExpectEnd("a member removal");
        return id;
    }

    /// <summary>A reader positioned after the kind byte, which must be <paramref name="kind"/>.</summary>
    public static CommandReader Body(ReadOnlySpan<byte> command, CommandKind kind)
    {
        if (KindOf(command) != kind)
        {
            throw new InvalidDataException($"Replicated store command: kind {command[0]}, expected {kind} ({(byte)kind}).");
        }

        return new CommandReader(command[1..]);
    }

    private static void WritePut(CommandWriter w, PutRequest request)
    {
        w.WriteBytes(request.Key.Span);
        w.WriteBytes(request.Value.Span);
        w.WriteInt64(request.Lease);
        w.WriteByte((byte)((request.PrevKv ? 1 : 0) | (request.IgnoreValue ? 2 : 0) | (request.IgnoreLease ? 4 : 0)));
    }

    private static PutRequest ReadPut(ref CommandReader r)
    {
        var key = r.ReadBytes("put key");
        var value = r.ReadBytes("put value");
        long lease = r.ReadInt64("put lease");
        var (prevKv, ignoreValue, ignoreLease) = ReadPutFlags(ref r);
        return new PutRequest { Key = key, Value = value, Lease = lease, PrevKv = prevKv, IgnoreValue = ignoreValue, IgnoreLease = ignoreLease };
    }

    private static (bool PrevKv, bool IgnoreValue, bool IgnoreLease) ReadPutFlags(ref CommandReader r)
    {
        byte flags = r.ReadByte("put flags");
        if (flags > 7)
        {
            throw new InvalidDataException($"Replicated store command: put flags {flags} has undefined bits.");
        }

        return ((flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0);
    }

    private static void WriteDeleteRange(CommandWriter w, DeleteRangeRequest request)
    {
        w.WriteBytes(request.Key.Span);
        w.WriteBytes(request.RangeEnd.Span);
        w.WriteBool(request.PrevKv);
    }

    private static DeleteRangeRequest ReadDeleteRange(ref CommandReader r) =>
        new() { Key = r.ReadBytes("delete key"), RangeEnd = r.ReadBytes("delete range end"), PrevKv = r.ReadBool("delete prevKv flag") };

    private static void WriteRange(CommandWriter w, RangeRequest request)
    {
        w.WriteBytes(request.Key.Span);
        w.WriteBytes(request.RangeEnd.Span);
        w.WriteInt64(request.Limit);
        w.WriteInt64(request.Revision);
        w.WriteByte((byte)request.SortOrder);
        w.WriteByte((byte)request.SortTarget);
        w.WriteByte((byte)((request.KeysOnly ? 1 : 0) | (request.CountOnly ? 2 : 0)));
        w.WriteInt64(request.MinModRevision);
        w.WriteInt64(request.MaxModRevision);
        w.WriteInt64(request.MinCreateRevision);
        w.WriteInt64(request.MaxCreateRevision);
    }

    private static RangeRequest ReadRange(ref CommandReader r)
    {
        var key = r.ReadBytes("range key");
        var rangeEnd = r.ReadBytes("range end");
        long limit = r.ReadInt64("range limit");
        long revision = r.ReadInt64("range revision");
        var sortOrder = r.ReadEnum<SortOrder>("range sort order");
        var sortTarget = r.ReadEnum<SortTarget>("range sort target");
        byte flags = r.ReadByte("range flags");
        if (flags > 3)
        {
            throw new InvalidDataException($"Replicated store command: range flags {flags} has undefined bits.");
        }

        return new RangeRequest
        {
            Key = key,
            RangeEnd = rangeEnd,
            Limit = limit,
            Revision = revision,
            SortOrder = sortOrder,
            SortTarget = sortTarget,
            KeysOnly = (flags & 1) != 0,
            CountOnly = (flags & 2) != 0,
            MinModRevision = r.ReadInt64("range min mod revision"),
            MaxModRevision = r.ReadInt64("range max mod revision"),
            MinCreateRevision = r.ReadInt64("range min create revision"),
            MaxCreateRevision = r.ReadInt64("range max create revision"),
        };
    }

    private static void WriteTxn(CommandWriter w, TxnRequest request, int depth)
    {
        if (depth > MaxTxnDepth)
        {
            throw new MvccException(MvccError.TooManyOps, $"Transactions are nested more than {MaxTxnDepth} levels deep.");
        }

        ArgumentNullException.ThrowIfNull(request.Compare, nameof(TxnRequest.Compare));
        ArgumentNullException.ThrowIfNull(request.Success, nameof(TxnRequest.Success));
        ArgumentNullException.ThrowIfNull(request.Failure, nameof(TxnRequest.Failure));
        w.WriteUInt64((ulong)request.Compare.Count);
        foreach (var compare in request.Compare)
        {
            ArgumentNullException.ThrowIfNull(compare, nameof(TxnRequest.Compare));
            w.WriteByte((byte)compare.Result);
            w.WriteByte((byte)compare.Target);
            w.WriteBytes(compare.Key.Span);
            w.WriteBytes(compare.RangeEnd.Span);
            w.WriteInt64(compare.Version);
            w.WriteInt64(compare.CreateRevision);
            w.WriteInt64(compare.ModRevision);
            w.WriteBytes(compare.Value.Span);
            w.WriteInt64(compare.Lease);
        }

        WriteOps(w, request.Success, depth);
        WriteOps(w, request.Failure, depth);
    }

    private static void WriteOps(CommandWriter w, IReadOnlyList<RequestOp> ops, int depth)
    {
        w.WriteUInt64((ulong)ops.Count);
        foreach (var op in ops)
        {
            ArgumentNullException.ThrowIfNull(op, nameof(RequestOp));
            if (op.RequestRange is { } range)
            {
                w.WriteByte(OpRange);
                WriteRange(w, range);
            }
            else if (op.RequestPut is { } put)
            {
                w.WriteByte(OpPut);
                WritePut(w, put);
            }
            else if (op.RequestDeleteRange is { } delete)
            {
                w.WriteByte(OpDeleteRange);
                WriteDeleteRange(w, delete);
            }
            else if (op.RequestTxn is { } txn)
            {
                w.WriteByte(OpTxn);
                WriteTxn(w, txn, depth + 1);
            }
            else
            {
                throw new ArgumentException("A transaction operation holds no request.", nameof(ops));
            }
        }
    }

    private static TxnRequest ReadTxn(ref CommandReader r, int depth)
    {
        if (depth > MaxTxnDepth)
        {
            throw new InvalidDataException($"Replicated store command: transactions nested more than {MaxTxnDepth} levels deep.");
        }

        int compareCount = r.ReadCount("txn compare count");
        var compares = new Compare[compareCount];
        for (int i = 0; i < compareCount; i++)
        {
            compares[i] = new Compare
            {
                Result = r.ReadEnum<CompareResult>("compare result"),
                Target = r.ReadEnum<CompareTarget>("compare target"),
                Key = r.ReadBytes("compare key"),
                RangeEnd = r.ReadBytes("compare range end"),
                Version = r.ReadInt64("compare version"),
                CreateRevision = r.ReadInt64("compare create revision"),
                ModRevision = r.ReadInt64("compare mod revision"),
                Value = r.ReadBytes("compare value"),
                Lease = r.ReadInt64("compare lease"),
            };
        }

        var success = ReadOps(ref r, depth);
        var failure = ReadOps(ref r, depth);
        return new TxnRequest { Compare = compares, Success = success, Failure = failure };
    }

    private static RequestOp[] ReadOps(ref CommandReader r, int depth)
    {
        int count = r.ReadCount("txn operation count");
        var ops = new RequestOp[count];
        for (int i = 0; i < count; i++)
        {
            byte tag = r.ReadByte("txn operation tag");
            ops[i] = tag switch
            {
                OpRange => RequestOp.Range(ReadRange(ref r)),
                OpPut => RequestOp.Put(ReadPut(ref r)),
                OpDeleteRange => RequestOp.DeleteRange(ReadDeleteRange(ref r)),
                OpTxn => RequestOp.Txn(ReadTxn(ref r, depth + 1)),
                _ => throw new InvalidDataException($"Replicated store command: txn operation tag {tag} is not range (1), put (2), delete (3) or txn (4)."),
            };
        }

        return ops;
    }
}
