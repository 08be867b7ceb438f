using System.Buffers.Binary;
using System.Text;

namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>
/// The B+tree bucket of leases (docs/formats.md, "MVCC store"), as etcd's <c>lease</c> bucket: the
/// key is the lease id, 8 bytes big-endian (so the bucket is in id order for non-negative ids, as
/// etcd's); the value is the granted TTL in seconds, 8 bytes little-endian, followed — once a
/// keep-alive was applied from the replicated log — by that keep-alive's log index, 8 bytes
/// little-endian (a replicated expiry revocation proposed before it then does nothing). Which keys a lease
/// holds is not stored here but in each key's stored value (its lease field), as etcd does, so a
/// put and its attachment are one B+tree write. Pinned in LeaseFormatTests.
/// </summary>
internal static class LeaseBucket
{
    public const string Name = "lease";

    public const int KeySizeBytes = 8;

    public const int ValueSizeBytes = 8;

    /// <summary>The size of a value that also holds the log index of the last applied keep-alive.</summary>
    public const int RenewedValueSizeBytes = 16;

    public static readonly byte[] NameBytes = Encoding.ASCII.GetBytes(Name);

    public static byte[] Key(long id)
    {
        var bytes = new byte[KeySizeBytes];
        BinaryPrimitives.WriteInt64BigEndian(bytes, id);
        return bytes;
    }

    public static byte[] Value(long ttlSeconds)
    {
        var bytes = new byte[ValueSizeBytes];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, ttlSeconds);
        return bytes;
    }

    /// <summary>A value with the log index of the last keep-alive applied from the replicated log.</summary>
    public static byte[] Value(long ttlSeconds, long renewedAtIndex)
    {
        var bytes = new byte[RenewedValueSizeBytes];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, ttlSeconds);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(ValueSizeBytes), renewedAtIndex);
        return bytes;
    }

    /// <summary>Decodes one entry; false when it is not well formed (wrong sizes, id 0, TTL out of range).</summary>
    public static bool TryDecode(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, out long id, out long ttlSeconds) =>
        TryDecode(key, value, out id, out ttlSeconds, out _);

    /// <summary>Decodes one entry with its last applied keep-alive's log index (0: none); false when it is not well formed (wrong sizes, id 0, TTL or index out of range).</summary>
    public static bool TryDecode(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, out long id, out long ttlSeconds, out long renewedAtIndex)
    {
        id = 0;
        ttlSeconds = 0;
        renewedAtIndex = 0;
        if (key.Length != KeySizeBytes || value.Length is not (ValueSizeBytes or RenewedValueSizeBytes))
        {
            return false;
        }

        id = BinaryPrimitives.ReadInt64BigEndian(key);
        ttlSeconds = BinaryPrimitives.ReadInt64LittleEndian(value);
        if (value.Length == RenewedValueSizeBytes)
        {
            renewedAtIndex = BinaryPrimitives.ReadInt64LittleEndian(value[ValueSizeBytes..]);
        }

        return id != 0 && ttlSeconds is >= 1 and <= LeaseOptions.MaxTtlSeconds && renewedAtIndex >= 0;
    }
}
