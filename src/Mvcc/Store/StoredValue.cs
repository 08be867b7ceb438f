using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The B+tree value of a stored revision (docs/formats.md, "MVCC store"). The mod revision is the
/// B+tree key; the value starts with a kind byte that says both what the entry is and how its
/// header is encoded, so one file holds entries of either encoding:
/// <list type="bullet">
/// <item>kinds 1 (put) and 2 (tombstone), format version 1: create revision, version and lease
/// (each 8 bytes, little-endian), the key length (4 bytes), then the key and the value (the rest).
/// A tombstone stores zeros and no value. Written by stores of format version 1 only.</item>
/// <item>kinds 3 (put) and 4 (tombstone), format version 2, the one written now: unsigned LEB128
/// varints — a put's create revision as its distance below the mod revision (0 for a key's first
/// put), its version, its lease (as a 64-bit unsigned integer) and its key length; a tombstone's
/// key length only — then the key and the value. 5 bytes in the common case instead of 29.</item>
/// </list>
/// A version 2 header is never longer than a version 1 header: an entry whose fields would make it
/// longer (only several huge fields at once, e.g. a distance and a version both at least 2^56 with a
/// negative lease: no one field alone) is written in version 1, so <see cref="MaxHeaderSizeBytes"/> bounds every stored value's header.
/// Pinned in FormatTests.
/// </summary>
internal static class StoredValue
{
    public const byte PutKind = 1;

    public const byte TombstoneKind = 2;

    public const byte CompactPutKind = 3;

    public const byte CompactTombstoneKind = 4;

    public const int KindOffset = 0;

    public const int CreateRevisionOffset = 1;

    public const int VersionOffset = 9;

    public const int LeaseOffset = 17;

    public const int KeyLengthOffset = 25;

    /// <summary>The fixed header of kinds 1 and 2.</summary>
    public const int Version1HeaderSizeBytes = 29;

    /// <summary>The longest header of any stored value (a version 2 header is written only when it is not longer).</summary>
    public const int MaxHeaderSizeBytes = Version1HeaderSizeBytes;

    /// <summary>A 64-bit varint is at most 10 bytes (7 bits a byte), the 10th holding only the top bit.</summary>
    private const int MaxVarintBytes = 10;

    /// <summary>The header a put at <paramref name="main"/> is written with: version 2's when not longer than version 1's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PutHeaderSizeBytes(long main, int keyLength, long createRevision, long version, long lease)
    {
        int compact = CompactPutHeaderSizeBytes(main, keyLength, createRevision, version, lease);
        return compact <= Version1HeaderSizeBytes ? compact : Version1HeaderSizeBytes;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CompactPutHeaderSizeBytes(long main, int keyLength, long createRevision, long version, long lease) =>
        1 + Leb128.Size((ulong)(main - createRevision)) + Leb128.Size((ulong)version) + Leb128.Size((ulong)lease) + Leb128.Size((uint)keyLength);

    public static int PutSizeBytes(long main, int keyLength, int valueLength, long createRevision, long version, long lease) =>
        PutHeaderSizeBytes(main, keyLength, createRevision, version, lease) + keyLength + valueLength;

    public static int TombstoneSizeBytes(int keyLength) => 1 + Leb128.Size((uint)keyLength) + keyLength;

    public static byte[] EncodePut(long main, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long version, long lease)
    {
        var bytes = new byte[PutSizeBytes(main, key.Length, value.Length, createRevision, version, lease)];
        WritePut(bytes, main, key, value, createRevision, version, lease);
        return bytes;
    }

    /// <summary>
    /// Encodes a put at mod revision <paramref name="main"/> into <paramref name="destination"/>,
    /// exactly <see cref="PutSizeBytes"/> long: kind 3, unless that header would be longer than kind 1's.
    /// </summary>
    public static void WritePut(Span<byte> destination, long main, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long version, long lease)
    {
        int compact = CompactPutHeaderSizeBytes(main, key.Length, createRevision, version, lease);
        int header = destination.Length - key.Length - value.Length;
        if (header != Math.Min(compact, Version1HeaderSizeBytes) || createRevision < 1 || createRevision > main || version < 1)
        {
            throw new InvariantViolationException($"MVCC store: a put at {main} (create revision {createRevision}, version {version}) into {destination.Length} bytes for a {key.Length}-byte key and a {value.Length}-byte value.");
        }

        int at;
        if (compact > Version1HeaderSizeBytes)
        {
            WriteVersion1Header(destination, PutKind, createRevision, version, lease, key.Length);
            at = Version1HeaderSizeBytes;
        }
        else
        {
            destination[KindOffset] = CompactPutKind;
            at = 1;
            at += Leb128.Write(destination[at..], (ulong)(main - createRevision));
            at += Leb128.Write(destination[at..], (ulong)version);
            at += Leb128.Write(destination[at..], (ulong)lease);
            at += Leb128.Write(destination[at..], (uint)key.Length);
        }

        key.CopyTo(destination[at..]);
        value.CopyTo(destination[(at + key.Length)..]);
    }

    public static byte[] EncodeTombstone(ReadOnlySpan<byte> key)
    {
        var bytes = new byte[TombstoneSizeBytes(key.Length)];
        WriteTombstone(bytes, key);
        return bytes;
    }

    /// <summary>Encodes a tombstone (kind 4) into <paramref name="destination"/>, exactly <see cref="TombstoneSizeBytes"/> long.</summary>
    public static void WriteTombstone(Span<byte> destination, ReadOnlySpan<byte> key)
    {
        destination[KindOffset] = CompactTombstoneKind;
        int at = 1 + Leb128.Write(destination[1..], (uint)key.Length);
        key.CopyTo(destination[at..]);
    }

    /// <summary>
    /// The version 1 (kinds 1 and 2) encoding of a put or, with <paramref name="kind"/> 2 and zero
    /// fields, a tombstone. Written by stores of format version 1; the store itself writes it only
    /// for the rare put whose version 2 header would be longer. Tests use it to build version 1 stores.
    /// </summary>
    public static byte[] EncodeVersion1(byte kind, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long createRevision, long version, long lease)
    {
        var bytes = new byte[Version1HeaderSizeBytes + key.Length + value.Length];
        WriteVersion1Header(bytes, kind, createRevision, version, lease, key.Length);
        key.CopyTo(bytes.AsSpan(Version1HeaderSizeBytes));
        value.CopyTo(bytes.AsSpan(Version1HeaderSizeBytes + key.Length));
        return bytes;
    }

    /// <summary>The 29-byte header of kinds 1 and 2 (also what <see cref="KvHash"/> hashes for every entry).</summary>
    public static void WriteVersion1Header(Span<byte> destination, byte kind, long createRevision, long version, long lease, int keyLength)
    {
        destination[KindOffset] = kind;
        BinaryPrimitives.WriteInt64LittleEndian(destination[CreateRevisionOffset..], createRevision);
        BinaryPrimitives.WriteInt64LittleEndian(destination[VersionOffset..], version);
        BinaryPrimitives.WriteInt64LittleEndian(destination[LeaseOffset..], lease);
        BinaryPrimitives.WriteInt32LittleEndian(destination[KeyLengthOffset..], keyLength);
    }

    /// <summary>
    /// Decodes the fields of a stored value at mod revision <paramref name="main"/>; false when the
    /// bytes are not a well-formed stored value of the given kind (<see cref="Malformed"/> says why).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryDecode(ReadOnlySpan<byte> bytes, long main, bool tombstone, out Decoded decoded) =>
        Decode(bytes, main, tombstone, out decoded) is null;

    /// <summary>The error for a stored value that does not decode: names the store, the bucket, the revision and what is wrong.</summary>
    public static CorruptionException Malformed(string path, Revision revision, bool tombstone, ReadOnlySpan<byte> bytes)
    {
        string problem = Decode(bytes, revision.Main, tombstone, out _) ?? "it decodes (an invariant of the caller is broken)";
        return new CorruptionException(path, 0, $"the stored value of revision {revision} in bucket '{MetaKeys.KeyBucket}' is malformed: {problem}");
    }

    /// <summary>Null when <paramref name="bytes"/> decode, else what is wrong with them (a constant: no allocation).</summary>
    private static string? Decode(ReadOnlySpan<byte> bytes, long main, bool tombstone, out Decoded decoded)
    {
        decoded = default;
        if (bytes.IsEmpty)
        {
            return "it is empty";
        }

        byte kind = bytes[KindOffset];
        if (kind == (tombstone ? CompactTombstoneKind : CompactPutKind))
        {
            return tombstone ? DecodeCompactTombstone(bytes, out decoded) : DecodeCompactPut(bytes, main, out decoded);
        }

        if (kind != (tombstone ? TombstoneKind : PutKind))
        {
            return tombstone ? "its kind is not a tombstone's (2 or 4) while its key has the tombstone mark" : "its kind is not a put's (1 or 3)";
        }

        if (bytes.Length < Version1HeaderSizeBytes)
        {
            return "it ends inside the 29-byte header of kind 1 or 2";
        }

        int keyLength = BinaryPrimitives.ReadInt32LittleEndian(bytes[KeyLengthOffset..]);
        if (keyLength < 1 || keyLength > bytes.Length - Version1HeaderSizeBytes || (tombstone && keyLength != bytes.Length - Version1HeaderSizeBytes))
        {
            return "its key length does not fit the bytes";
        }

        decoded = new Decoded(
            BinaryPrimitives.ReadInt64LittleEndian(bytes[CreateRevisionOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[VersionOffset..]),
            BinaryPrimitives.ReadInt64LittleEndian(bytes[LeaseOffset..]),
            keyLength,
            Version1HeaderSizeBytes);
        return null;
    }

    private static string? DecodeCompactPut(ReadOnlySpan<byte> bytes, long main, out Decoded decoded)
    {
        decoded = default;
        int at = 1;
        if (ReadVarint(bytes, ref at, out ulong distance) is { } badDistance)
        {
            return badDistance;
        }

        if (distance >= (ulong)main)
        {
            return "its create revision's distance below the mod revision leaves a create revision below 1";
        }

        if (ReadVarint(bytes, ref at, out ulong version) is { } badVersion)
        {
            return badVersion;
        }

        if (version < 1 || version > long.MaxValue)
        {
            return "its version is not between 1 and 2^63-1";
        }

        if (ReadVarint(bytes, ref at, out ulong lease) is { } badLease)
        {
            return badLease;
        }

        if (ReadVarint(bytes, ref at, out ulong keyLength) is { } badLength)
        {
            return badLength;
        }

        if (keyLength < 1 || keyLength > (ulong)(bytes.Length - at))
        {
            return "its key length does not fit the bytes";
        }

        decoded = new Decoded(main - (long)distance, (long)version, (long)lease, (int)keyLength, at);
        return null;
    }

    private static string? DecodeCompactTombstone(ReadOnlySpan<byte> bytes, out Decoded decoded)
    {
        decoded = default;
        int at = 1;
        if (ReadVarint(bytes, ref at, out ulong keyLength) is { } bad)
        {
            return bad;
        }

        if (keyLength < 1 || keyLength != (ulong)(bytes.Length - at))
        {
            return "its key length is not the rest of the bytes";
        }

        decoded = new Decoded(0, 0, 0, (int)keyLength, at);
        return null;
    }

    /// <summary>
    /// Reads an unsigned LEB128 varint at <paramref name="at"/>: null when well formed, else what is
    /// wrong — it runs past the end, or it is overlong (bits beyond 64, or a last byte of zero
    /// after the first: not the one encoding <see cref="Leb128.Write"/> writes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static string? ReadVarint(ReadOnlySpan<byte> bytes, ref int at, out ulong value)
    {
        value = 0;
        if ((uint)at < (uint)bytes.Length && bytes[at] < 0x80)
        {
            value = bytes[at++];
            return null;
        }

        // Bounded: the 10th byte (shift 63) either ends the varint or is refused.
        for (int shift = 0; ; shift += 7)
        {
            if (at >= bytes.Length)
            {
                return "a varint of its header runs past the end of the value (truncated)";
            }

            byte b = bytes[at++];
            if (shift == 7 * (MaxVarintBytes - 1) && b > 1)
            {
                return "a varint of its header holds more than 64 bits (overlong)";
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return shift > 0 && b == 0 ? "a varint of its header ends in a zero byte (overlong)" : null;
            }
        }
    }

    public static ReadOnlySpan<byte> KeyOf(ReadOnlySpan<byte> bytes, in Decoded decoded) => bytes.Slice(decoded.HeaderSizeBytes, decoded.KeyLength);

    public static ReadOnlySpan<byte> ValueOf(ReadOnlySpan<byte> bytes, in Decoded decoded) => bytes[(decoded.HeaderSizeBytes + decoded.KeyLength)..];

    /// <summary>The key and the value, side by side: everything after the header.</summary>
    public static ReadOnlySpan<byte> BodyOf(ReadOnlySpan<byte> bytes, in Decoded decoded) => bytes[decoded.HeaderSizeBytes..];

    /// <summary>A stored value's fields; <c>HeaderSizeBytes</c> is where its key starts (29 for kinds 1 and 2).</summary>
    internal readonly record struct Decoded(long CreateRevision, long Version, long Lease, int KeyLength, int HeaderSizeBytes);
}
