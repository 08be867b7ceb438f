namespace EmbeddedRaft.Storage.BTree;

/// <summary>A position on one level of a cursor's path: a materialised node or a cached page.</summary>
internal struct CursorFrame
{
    public Node? Node;
    public byte[]? Page;
    public int Index;

    public readonly int Count => Node?.Entries.Count ?? PageFormat.Count(Page!);

    public readonly bool IsLeaf => Node?.IsLeaf ?? PageFormat.Kind(Page!) == PageKind.Leaf;
}
