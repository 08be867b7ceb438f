using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>Header of a branch entry: child page id and key length; then the key, a lower bound of
/// every key in the child's subtree.</summary>
[StructLayout(LayoutKind.Explicit, Size = SizeOf)]
internal struct BranchEntryHeader
{
    public const int SizeOf = 10;

    [FieldOffset(0)] public long Child;
    [FieldOffset(8)] public ushort KeyLength;
}
