namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The encoding of the hash-check commands (kinds 32-33, docs/formats.md, "Replicated store
/// commands"): a start carries the revision to hash (zigzag varint); a report carries the start's
/// log index and the member id (varints), the revision and compact revision it hashed (zigzag
/// varints) and the hash (varint).
/// </summary>
internal static class HashCheckCommands
{
    public static ReadOnlyMemory<byte> EncodeStart(long revision)
    {
        var w = new CommandWriter(CommandKind.HashCheckStart, 16);
        w.WriteInt64(revision);
        return w.Written;
    }

    public static ReadOnlyMemory<byte> EncodeReport(HashReport report)
    {
        var w = new CommandWriter(CommandKind.HashCheckReport, 48);
        w.WriteUInt64(report.CheckIndex);
        w.WriteUInt64(report.MemberId);
        w.WriteInt64(report.Revision);
        w.WriteInt64(report.CompactRevision);
        w.WriteUInt64(report.Hash);
        return w.Written;
    }

    /// <exception cref="InvalidDataException">Not a well-formed start.</exception>
    public static long DecodeStart(ReadOnlySpan<byte> command)
    {
        var r = CommandCodec.Body(command, CommandKind.HashCheckStart);
        long revision = r.ReadInt64("hash check revision");
        r.ExpectEnd("a hash check start");
        return revision;
    }

    /// <exception cref="InvalidDataException">Not a well-formed report.</exception>
    public static HashReport DecodeReport(ReadOnlySpan<byte> command)
    {
        var r = CommandCodec.Body(command, CommandKind.HashCheckReport);
        ulong checkIndex = r.ReadUInt64("hash check index");
        ulong memberId = r.ReadUInt64("hash check member");
        long revision = r.ReadInt64("hash check revision");
        long compact = r.ReadInt64("hash check compact revision");
        ulong hash = r.ReadUInt64("hash");
        r.ExpectEnd("a hash check report");
        if (hash > uint.MaxValue)
        {
            throw new InvalidDataException($"Replicated store command: a hash check report's hash {hash} does not fit 32 bits.");
        }

        return new HashReport(checkIndex, memberId, revision, compact, (uint)hash);
    }
}
