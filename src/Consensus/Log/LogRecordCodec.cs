using System.Buffers.Binary;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// The payloads of <see cref="DurableRaftLog"/>'s write-ahead-log records (docs/formats.md,
/// "Durable Raft log records"). Entries, hard states and configurations reuse
/// <see cref="MessageCodec"/>'s versioned encodings, so a change there is read back here too.
/// Decoders throw <see cref="MessageFormatException"/>; the log turns it into a
/// <see cref="Storage.CorruptionException"/> naming the segment and offset.
/// </summary>
internal static class LogRecordCodec
{
    /// <summary>The version byte that starts a snapshot marker payload.</summary>
    public const byte MarkerVersion = 1;

    /// <summary>Version, kind, compact index (u64 LE), compact term (u64 LE), last index (u64 LE), then the snapshot metadata.</summary>
    private const int MarkerFixedSizeBytes = 1 + 1 + 8 + 8 + 8;

    public static byte[] EncodeMarker(SnapshotMarker marker)
    {
        var metadata = MessageCodec.EncodeSnapshotMetadata(marker.Metadata);
        var buffer = new byte[MarkerFixedSizeBytes + metadata.Length];
        buffer[0] = MarkerVersion;
        buffer[1] = (byte)marker.Kind;
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(2), marker.CompactIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(10), marker.CompactTerm);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(18), marker.LastIndex);
        metadata.CopyTo(buffer.AsSpan(MarkerFixedSizeBytes));
        return buffer;
    }

    /// <exception cref="MessageFormatException">Not a valid marker.</exception>
    public static SnapshotMarker DecodeMarker(ReadOnlySpan<byte> payload)
    {
        if (payload.Length < MarkerFixedSizeBytes)
        {
            throw new MessageFormatException($"A snapshot marker is at least {MarkerFixedSizeBytes} bytes; this one is {payload.Length}.", payload.Length);
        }

        if (payload[0] != MarkerVersion)
        {
            throw new MessageFormatException($"Unsupported snapshot marker version {payload[0]} (this build reads {MarkerVersion}).", 0);
        }

        var kind = (SnapshotMarkerKind)payload[1];
        if (kind is not (SnapshotMarkerKind.Installed or SnapshotMarkerKind.Compacted))
        {
            throw new MessageFormatException($"Unknown snapshot marker kind {payload[1]}.", 1);
        }

        ulong compactIndex = BinaryPrimitives.ReadUInt64LittleEndian(payload[2..]);
        ulong compactTerm = BinaryPrimitives.ReadUInt64LittleEndian(payload[10..]);
        ulong lastIndex = BinaryPrimitives.ReadUInt64LittleEndian(payload[18..]);
        var metadata = MessageCodec.DecodeSnapshotMetadata(payload[MarkerFixedSizeBytes..]);
        if (compactIndex > metadata.Index || metadata.Index > lastIndex)
        {
            throw new MessageFormatException($"The compact index {compactIndex}, snapshot index {metadata.Index} and last index {lastIndex} are out of order.", 2);
        }

        if (kind == SnapshotMarkerKind.Installed && (compactIndex != metadata.Index || compactTerm != metadata.Term || lastIndex != metadata.Index))
        {
            throw new MessageFormatException($"An installed snapshot's marker must compact to the snapshot itself ({metadata.Index}/{metadata.Term}), not {compactIndex}/{compactTerm} with last index {lastIndex}.", 2);
        }

        return new SnapshotMarker(kind, metadata, compactIndex, compactTerm, lastIndex);
    }

    /// <summary>The initial configuration, as snapshot metadata at index 0 (the state of a log before its first entry).</summary>
    public static byte[] EncodeBootstrap(ConfState initial) => MessageCodec.EncodeSnapshotMetadata(new SnapshotMetadata(0, 0, initial));

    /// <exception cref="MessageFormatException">Not a valid bootstrap record.</exception>
    public static ConfState DecodeBootstrap(ReadOnlySpan<byte> payload)
    {
        var metadata = MessageCodec.DecodeSnapshotMetadata(payload);
        if (metadata.Index != 0 || metadata.Term != 0)
        {
            throw new MessageFormatException($"A bootstrap record holds index 0 and term 0, not {metadata.Index}/{metadata.Term}.", 0);
        }

        return metadata.ConfState;
    }
}
