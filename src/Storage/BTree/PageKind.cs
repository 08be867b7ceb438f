namespace EmbeddedRaft.Storage.BTree;

/// <summary>What a page holds; byte 4 of every page. See docs/btree.md.</summary>
internal enum PageKind : byte
{
    Meta = 1,
    Branch = 2,
    Leaf = 3,
    Overflow = 4,
    Freelist = 5,
}
