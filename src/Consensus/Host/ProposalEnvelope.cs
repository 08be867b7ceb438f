using System.Buffers.Binary;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The bytes a <see cref="RaftNode{TResult}"/> puts in a normal log entry: a marker, the id of the
/// node the command was proposed on (the origin), a request id unique for that origin, then the
/// application's command. The origin completes its pending call when the entry is applied; every
/// replica drops a second copy of one (origin, request id) (<see cref="AppliedRequestWindow"/>).
/// </summary>
/// <remarks>
/// Layout (little-endian): <c>[0] = 0xE1</c> (marker and version 1), <c>[1..9)</c> origin node id,
/// <c>[9..17)</c> request id, <c>[17..)</c> the command. Pinned in docs/formats.md and by a test.
/// </remarks>
internal static class ProposalEnvelope
{
    public const byte Marker = 0xE1;
    public const int HeaderSizeBytes = 17;

    public static byte[] Encode(ulong origin, ulong requestId, ReadOnlySpan<byte> command)
    {
        var bytes = new byte[HeaderSizeBytes + command.Length];
        bytes[0] = Marker;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(1), origin);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(9), requestId);
        command.CopyTo(bytes.AsSpan(HeaderSizeBytes));
        return bytes;
    }

    /// <summary>Reads an envelope; false when <paramref name="data"/> is not one (written by another host).</summary>
    public static bool TryDecode(ReadOnlyMemory<byte> data, out ulong origin, out ulong requestId, out ReadOnlyMemory<byte> command)
    {
        var span = data.Span;
        if (span.Length < HeaderSizeBytes || span[0] != Marker)
        {
            origin = 0;
            requestId = 0;
            command = default;
            return false;
        }

        origin = BinaryPrimitives.ReadUInt64LittleEndian(span[1..]);
        requestId = BinaryPrimitives.ReadUInt64LittleEndian(span[9..]);
        command = data[HeaderSizeBytes..];
        return true;
    }
}
