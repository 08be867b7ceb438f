namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The encoding of the lease commands (kinds 16-19, docs/formats.md, "Replicated store commands"):
/// the kind byte, then zigzag varints — the lease id, and for a grant its TTL in seconds.
/// </summary>
internal static class LeaseCommands
{
    public static ReadOnlyMemory<byte> EncodeGrant(long id, long ttlSeconds)
    {
        var w = new CommandWriter(CommandKind.LeaseGrant, 24);
        w.WriteInt64(id);
        w.WriteInt64(ttlSeconds);
        return w.Written;
    }

    /// <summary>A revoke, keep-alive or expiry: <paramref name="kind"/> and the lease id.</summary>
    public static ReadOnlyMemory<byte> EncodeId(CommandKind kind, long id)
    {
        if (kind is not (CommandKind.LeaseRevoke or CommandKind.LeaseKeepAlive or CommandKind.LeaseExpire))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a lease command that carries only an id.");
        }

        var w = new CommandWriter(kind, 16);
        w.WriteInt64(id);
        return w.Written;
    }

    /// <exception cref="InvalidDataException">Not a well-formed grant.</exception>
    public static (long Id, long TtlSeconds) DecodeGrant(ReadOnlySpan<byte> command)
    {
        var r = CommandCodec.Body(command, CommandKind.LeaseGrant);
        long id = r.ReadInt64("lease id");
        long ttl = r.ReadInt64("lease TTL");
        r.ExpectEnd("a lease grant");
        return (id, ttl);
    }

    /// <exception cref="InvalidDataException">Not a well-formed command of <paramref name="kind"/>.</exception>
    public static long DecodeId(ReadOnlySpan<byte> command, CommandKind kind)
    {
        var r = CommandCodec.Body(command, kind);
        long id = r.ReadInt64("lease id");
        r.ExpectEnd($"a {kind} command");
        return id;
    }
}
