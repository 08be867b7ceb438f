namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// One record read back from the log. <see cref="Payload"/> points into the reader's buffer and
/// is valid only until the next call to <see cref="WalReader.TryReadNext"/> or
/// <see cref="WalReader.Dispose"/>; copy it to keep it.
/// </summary>
public readonly struct WalRecord
{
    internal WalRecord(byte type, ulong index, ReadOnlyMemory<byte> payload, WalPosition position)
    {
        Type = type;
        Index = index;
        Payload = payload;
        Position = position;
    }

    /// <summary>The caller's record type, 1–255 (0 is the log's own segment header and is never returned).</summary>
    public byte Type { get; }

    /// <summary>The index the record was appended with (a Raft index), or 0 when it carries none.</summary>
    public ulong Index { get; }

    /// <summary>The payload bytes, valid until the reader moves on.</summary>
    public ReadOnlyMemory<byte> Payload { get; }

    /// <summary>Where the record's frame starts.</summary>
    public WalPosition Position { get; }
}
