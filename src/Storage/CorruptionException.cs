namespace EmbeddedRaft.Storage;

/// <summary>
/// Thrown when bytes read from disk fail a checksum or a structural check in a way that a torn
/// write cannot explain. The data is not returned and nothing is repaired automatically:
/// <see cref="Path"/> and <see cref="Offset"/> say where an operator should look.
/// </summary>
public sealed class CorruptionException : IOException
{
    /// <summary>Creates the exception for corruption found in <paramref name="path"/> at <paramref name="offset"/>.</summary>
    public CorruptionException(string path, long offset, string reason)
        : base($"Corruption in '{path}' at offset {offset}: {reason}")
    {
        Path = path;
        Offset = offset;
        Reason = reason;
    }

    /// <summary>The file in which the corruption was found.</summary>
    public string Path { get; }

    /// <summary>The byte offset within <see cref="Path"/> of the first bad byte, record or page.</summary>
    public long Offset { get; }

    /// <summary>What check failed, in words.</summary>
    public string Reason { get; }
}
