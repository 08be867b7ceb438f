using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>Header of a leaf entry: key length, flags, value length; then the key, then the value
/// (inline) or the first page id of its overflow run (8 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = SizeOf)]
internal struct LeafEntryHeader
{
    public const int SizeOf = 8;
    public const byte OverflowFlag = 1;

    [FieldOffset(0)] public ushort KeyLength;
    [FieldOffset(2)] public byte Flags;
    [FieldOffset(3)] public byte Reserved;
    [FieldOffset(4)] public int ValueLength;
}
