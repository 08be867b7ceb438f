namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// Equality of keys by content, with lookups by span (no array per probe): the hash map the index
/// is rebuilt in at open.
/// </summary>
internal sealed class KeyBytesComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
{
    public static KeyBytesComparer Instance { get; } = new();

    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    public int GetHashCode(byte[] obj) => Hash(obj);

    public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

    public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);

    public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();

    private static int Hash(ReadOnlySpan<byte> key)
    {
        var hash = default(HashCode);
        hash.AddBytes(key);
        return hash.ToHashCode();
    }
}
