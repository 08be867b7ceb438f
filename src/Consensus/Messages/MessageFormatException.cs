namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// Bytes given to <see cref="MessageCodec"/> are not a valid encoding: truncated, an unknown
/// version or enum value, an overlong varint, a length beyond the input, or trailing bytes.
/// This is the only exception decoding throws, whatever the input.
/// </summary>
public sealed class MessageFormatException : FormatException
{
    /// <summary>Creates the exception with a description of what is wrong at <paramref name="offset"/>.</summary>
    internal MessageFormatException(string message, int offset)
        : base(message)
    {
        Offset = offset;
    }

    /// <summary>The byte offset in the input at which decoding failed.</summary>
    public int Offset { get; }
}
