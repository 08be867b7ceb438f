namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>Byte-wise (unsigned lexicographic) order, the order the B+tree keeps keys in.</summary>
internal sealed class ByteOrder : IComparer<byte[]>
{
    public static ByteOrder Instance { get; } = new();

    public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
}
