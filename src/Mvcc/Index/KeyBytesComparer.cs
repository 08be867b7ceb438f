namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// Equality of keys by content, with lookups by span (no array per probe): the hash map the index
/// is rebuilt in at open.
/// </summary>
/// <remarks>
/// <see cref="LastCreated"/> is the key array the map made for the last key a span lookup added,
/// so one probe both finds a key and, when it is new, adds it and hands back its array. An instance
/// is therefore used by one thread and one map.
/// </remarks>
internal sealed class KeyBytesComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
{
    /// <summary>The array <see cref="Create"/> made last, or null.</summary>
    public byte[]? LastCreated { get; private set; }

    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    public int GetHashCode(byte[] obj) => Hash(obj);

    public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

    public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);

    public byte[] Create(ReadOnlySpan<byte> alternate) => LastCreated = alternate.ToArray();

    private static int Hash(ReadOnlySpan<byte> key)
    {
        var hash = default(HashCode);
        hash.AddBytes(key);
        return hash.ToHashCode();
    }
}
