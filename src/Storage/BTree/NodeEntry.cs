namespace EmbeddedRaft.Storage.BTree;

/// <summary>One entry of a <see cref="Node"/>.</summary>
internal struct NodeEntry
{
    /// <summary>The key; for a branch, a lower bound of every key in the child's subtree.</summary>
    public ReadOnlyMemory<byte> Key;

    /// <summary>An inline value, or an overflow value not yet written to its run (then <see cref="PageId"/> is 0).</summary>
    public ReadOnlyMemory<byte> Value;

    /// <summary>Branch: the child page. Leaf: the first page of the value's overflow run, 0 when not written yet.</summary>
    public long PageId;

    public int ValueLength;

    public bool IsOverflow;
}
