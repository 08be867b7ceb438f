using System.Buffers.Binary;
using System.Globalization;

namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// The snapshot file layout (docs/formats.md, "Snapshot files"). All integers little-endian.
/// <code>
/// header   0  8  magic "ERSNAPSH"
///          8  4  version (1)
///         12  4  membership length m
///         16  8  index
///         24  8  term
///         32  m  membership
///       32+m  4  header crc: CRC-32C of bytes [0, 32+m)
/// chunk       4  data length L (1..chunk size)
///             4  CRC-32C of the L data bytes
///             L  data
/// trailer     4  0 (a chunk length of zero ends the data)
///             4  0 (reserved)
///             8  total data length
///             4  CRC-32C of all data bytes, in order
///             4  trailer crc: CRC-32C continued from the header crc over trailer bytes [0, 20)
///             8  magic "ERSNAPEN"; the file ends here
/// </code>
/// </summary>
internal static class SnapshotFormat
{
    public const int FixedHeaderSizeBytes = 32;
    public const int ChunkHeaderSizeBytes = 8;
    public const int TrailerSizeBytes = 32;
    public const uint Version = 1;
    public const string Extension = ".snap";
    public const string TempSuffix = ".tmp";
    public const string BrokenSuffix = ".broken";

    /// <summary>The snapshotter's directory lock (<c>flock</c> on Linux), as the log's <c>wal.lock</c>.</summary>
    public const string LockFileName = "snap.lock";

    public static readonly ulong HeaderMagic = BinaryPrimitives.ReadUInt64LittleEndian("ERSNAPSH"u8);
    public static readonly ulong TrailerMagic = BinaryPrimitives.ReadUInt64LittleEndian("ERSNAPEN"u8);

    public static string FileName(ulong term, ulong index) =>
        string.Create(CultureInfo.InvariantCulture, $"{term:x16}-{index:x16}{Extension}");

    /// <summary>Parses <c>%016x-%016x.snap</c> (term, index); temp and broken files are not snapshots.</summary>
    public static bool TryParseFileName(string name, out ulong term, out ulong index)
    {
        term = 0;
        index = 0;
        return name.Length == 33 + Extension.Length
            && name[16] == '-'
            && name.EndsWith(Extension, StringComparison.Ordinal)
            && IsLowerHex(name.AsSpan(0, 16)) && IsLowerHex(name.AsSpan(17, 16))
            && ulong.TryParse(name.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out term)
            && ulong.TryParse(name.AsSpan(17, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out index);
    }

    private static bool IsLowerHex(ReadOnlySpan<char> text)
    {
        foreach (char c in text)
        {
            if (c is not ((>= '0' and <= '9') or (>= 'a' and <= 'f')))
            {
                return false;
            }
        }

        return true;
    }
}
