using System.Numerics;
using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage;

/// <summary>
/// The B+tree's page checksum: built from the CRC-32C instruction, but <b>not</b> a CRC-32C of
/// the bytes (see <see cref="Crc32C"/> for that). It runs three CRC chains over the three thirds of
/// the whole 64-bit words, folds the second and third chains' results into the first as two more
/// words, then continues the first chain over the leftover words and bytes. The exact recipe is in
/// docs/btree.md ("Page checksum"); it is the on-disk format of every page, so it must never change
/// (PageLayoutTests pins known values).
/// </summary>
/// <remarks>
/// Why not a plain CRC-32C: the instruction has a latency of about three cycles and a throughput of
/// one per cycle, so one chain leaves the unit two-thirds idle; three independent chains checksum a
/// page in about a third of the time, and the B+tree checksums every page it writes at commit. The
/// combination still depends on every byte (each lane's result is fed into the first), so it detects
/// the torn writes and flipped bits the page format needs to detect; what it gives up is only
/// equality with the standard CRC, which no reader outside this library needs.
/// </remarks>
internal static class PageChecksum
{
    /// <summary>The checksum of <paramref name="data"/> (a page or run without its first four bytes, or a meta page's body).</summary>
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = uint.MaxValue;
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        // Three independent chains hide the instruction's latency; they are combined by feeding
        // the second and third chains' results into the first, which keeps it a checksum of every byte.
        int third = words.Length / 3;
        uint crc1 = 0;
        uint crc2 = 0;
        for (int i = 0; i < third; i++)
        {
            crc = BitOperations.Crc32C(crc, words[i]);
            crc1 = BitOperations.Crc32C(crc1, words[third + i]);
            crc2 = BitOperations.Crc32C(crc2, words[(2 * third) + i]);
        }

        crc = BitOperations.Crc32C(crc, crc1);
        crc = BitOperations.Crc32C(crc, crc2);
        for (int i = 3 * third; i < words.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, words[i]);
        }

        for (int i = words.Length * sizeof(ulong); i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }

        return ~crc;
    }
}
