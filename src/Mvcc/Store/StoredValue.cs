using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The B+tree value of a stored revision (docs/formats.md, "MVCC store"): a kind byte (1 put,
/// 2 tombstone), create revision, version and lease (each 8 bytes, little-endian), the key length
/// (4 bytes, little-endian), the key, then the value (the rest). A tombstone stores zeros and no
/// value. The mod revision is the B+tree key. Pinned in StoredValueTests.
/// </summary>
internal static class StoredValue
{
    public const byte PutKind = 1;

    public const byte TombstoneKind = 2;

    public const int KindOffset = 0;

    public const int CreateRevisionOffset = 1;

    public const int VersionOffset = 9;

    public const int LeaseOffset = 17;

    public const int KeyLengthOffset = 25;

    public const int HeaderSizeBytes = 29;

    public static int PutSizeBytes(int keyLength, int valueLength) => HeaderSizeBytes + keyLength + valueLength;

    public static int TombstoneSizeBytes(int keyLength) => HeaderSizeBytes + keyLength;

    public static byte[] EncodePut(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long version, long lease)
    {
        var bytes = new byte[PutSizeBytes(key.Length, value.Length)];
        WritePut(bytes, key, value, createRevision, version, lease);
        return bytes;
    }

    /// <summary>Encodes a put into <paramref name="destination"/>, exactly <see cref="PutSizeBytes"/> long.</summary>
    public static void WritePut(Span<byte> destination, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long version, long lease)
    {
        destination[KindOffset] = PutKind;
        BinaryPrimitives.WriteInt64LittleEndian(destination[CreateRevisionOffset..], createRevision);
        BinaryPrimitives.WriteInt64LittleEndian(destination[VersionOffset..], version);
        BinaryPrimitives.WriteInt64LittleEndian(destination[LeaseOffset..], lease);
        BinaryPrimitives.WriteInt32LittleEndian(destination[KeyLengthOffset..], key.Length);
        key.CopyTo(destination[HeaderSizeBytes..]);
        value.CopyTo(destination[(HeaderSizeBytes + key.Length)..]);
    }

    public static byte[] EncodeTombstone(ReadOnlySpan<byte> key)
    {
        var bytes = new byte[TombstoneSizeBytes(key.Length)];
        WriteTombstone(bytes, key);
        return bytes;
    }

    /// <summary>Encodes a tombstone into <paramref name="destination"/>, exactly <see cref="TombstoneSizeBytes"/> long.</summary>
    public static void WriteTombstone(Span<byte> destination, ReadOnlySpan<byte> key)
    {
        destination[..HeaderSizeBytes].Clear();
        destination[KindOffset] = TombstoneKind;
        BinaryPrimitives.WriteInt32LittleEndian(destination[KeyLengthOffset..], key.Length);
        key.CopyTo(destination[HeaderSizeBytes..]);
    }

    /// <summary>Decodes the fields; false when the bytes are not a well-formed stored value of the given kind.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryDecode(ReadOnlySpan<byte> bytes, bool tombstone, out Decoded decoded)
    {
        decoded = default;
        if (bytes.Length < HeaderSizeBytes || bytes[KindOffset] != (tombstone ? TombstoneKind : PutKind))
        {
            return false;
        }

        int keyLength = BinaryPrimitives.ReadInt32LittleEndian(bytes[KeyLengthOffset..]);
        if (keyLength < 1 || keyLength > bytes.Length - HeaderSizeBytes || (tombstone && keyLength != bytes.Length - HeaderSizeBytes))
        {
            return false;
        }

        decoded = new Decoded(
            BinaryPrimitives.ReadInt64LittleEndian(bytes[CreateRevisionOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[VersionOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[LeaseOffset..]),
            keyLength);
        return true;
    }

    public static ReadOnlySpan<byte> KeyOf(ReadOnlySpan<byte> bytes, in Decoded decoded) => bytes.Slice(HeaderSizeBytes, decoded.KeyLength);

    public static ReadOnlySpan<byte> ValueOf(ReadOnlySpan<byte> bytes, in Decoded decoded) => bytes[(HeaderSizeBytes + decoded.KeyLength)..];

    internal readonly record struct Decoded(long CreateRevision, long Version, long Lease, int KeyLength);
}
