namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The encoding of the lease commands (kinds 16-19, docs/formats.md, "Replicated store commands"):
/// the kind byte, then zigzag varints — the lease id, and for a grant its TTL in seconds, for an
/// expiry the log index of the lease's last applied keep-alive the leader saw (absent in entries
/// written before it existed: such an expiry revokes unconditionally).
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

    /// <summary>A leader's expiry revocation of a lease whose last applied keep-alive was at <paramref name="renewedAtIndex"/> (0: none).</summary>
    public static ReadOnlyMemory<byte> EncodeExpire(long id, long renewedAtIndex)
    {
        var w = new CommandWriter(CommandKind.LeaseExpire, 24);
        w.WriteInt64(id);
        w.WriteInt64(renewedAtIndex);
        return w.Written;
    }

    /// <summary>An expiry without the renewal fence (the form entries had before it): it revokes whatever renewals came after. Only the test-only broken rule writes it now.</summary>
    public static ReadOnlyMemory<byte> EncodeUnfencedExpire(long id)
    {
        var w = new CommandWriter(CommandKind.LeaseExpire, 16);
        w.WriteInt64(id);
        return w.Written;
    }

    /// <summary>An expiry: the lease id and the renewal index it was decided at (null: an older entry without one).</summary>
    /// <exception cref="InvalidDataException">Not a well-formed expiry.</exception>
    public static (long Id, long? RenewedAtIndex) DecodeExpire(ReadOnlySpan<byte> command)
    {
        var r = CommandCodec.Body(command, CommandKind.LeaseExpire);
        long id = r.ReadInt64("lease id");
        long? renewedAt = r.Remaining > 0 ? r.ReadInt64("lease renewal index") : null;
        r.ExpectEnd("a lease expiry");
        return (id, renewedAt);
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
