namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Where <see cref="Tree.FindMany"/> found a key: its leaf page and entry index, or a null page
/// when the key is absent (negative indexes mark a lookup still under way inside the search).
/// </summary>
internal readonly record struct LeafHit(byte[]? Page, int Index)
{
    /// <summary>True when the key was found (<see cref="Tree.ValueAt"/> reads its value).</summary>
    public bool Found => Page is not null && Index >= 0;
}
