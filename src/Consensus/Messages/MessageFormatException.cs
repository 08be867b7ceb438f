namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// Bytes given to <see cref="MessageCodec"/> are not a valid encoding: truncated, an unknown
/// version or enum value, an overlong varint, a length beyond the input, or trailing bytes.
/// This is the only exception decoding throws, whatever the input.
/// </summary>
public sealed class MessageFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public MessageFormatException()
    {
    }

    /// <summary>Creates the exception with a description of what is wrong.</summary>
    public MessageFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a description and a cause.</summary>
    public MessageFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The byte offset in the input at which decoding failed, or -1 if unknown.</summary>
    public int Offset { get; init; } = -1;
}
