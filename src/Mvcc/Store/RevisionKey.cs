using System.Buffers.Binary;
using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The B+tree key of a stored revision, etcd's layout: main revision (8 bytes, big-endian), the
/// byte '_', sub revision (8 bytes, big-endian), and for a delete the tombstone mark 't'. Big-endian
/// so byte order is revision order and every write appends at the right edge of the tree.
/// Pinned in docs/formats.md and RevisionKeyTests.
/// </summary>
internal static class RevisionKey
{
    public const int SizeBytes = 17;

    public const int TombstoneSizeBytes = 18;

    public const byte Separator = (byte)'_';

    public const byte TombstoneMark = (byte)'t';

    public static byte[] Encode(Revision revision, bool tombstone)
    {
        var key = new byte[tombstone ? TombstoneSizeBytes : SizeBytes];
        Write(key, revision, tombstone);
        return key;
    }

    public static void Write(Span<byte> destination, Revision revision, bool tombstone)
    {
        BinaryPrimitives.WriteInt64BigEndian(destination, revision.Main);
        destination[8] = Separator;
        BinaryPrimitives.WriteInt64BigEndian(destination[9..], revision.Sub);
        if (tombstone)
        {
            destination[17] = TombstoneMark;
        }
    }

    /// <summary>The smallest key of main revision <paramref name="main"/> (sub 0, no mark): where a scan from it starts.</summary>
    public static byte[] Start(long main) => Encode(new Revision(main, 0), tombstone: false);

    /// <summary>Decodes a key; false when it is not a revision key (the caller reports corruption).</summary>
    public static bool TryDecode(ReadOnlySpan<byte> key, out Revision revision, out bool tombstone)
    {
        revision = default;
        tombstone = false;
        if (key.Length is not (SizeBytes or TombstoneSizeBytes) || key[8] != Separator)
        {
            return false;
        }

        if (key.Length == TombstoneSizeBytes)
        {
            if (key[17] != TombstoneMark)
            {
                return false;
            }

            tombstone = true;
        }

        revision = new Revision(BinaryPrimitives.ReadInt64BigEndian(key), BinaryPrimitives.ReadInt64BigEndian(key[9..]));
        return revision.Main >= 0 && revision.Sub >= 0;
    }
}
