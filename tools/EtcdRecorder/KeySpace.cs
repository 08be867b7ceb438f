using System.Text;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// The keys, prefixes and values the sequences draw from: few enough that operations keep meeting
/// each other's keys (versions grow, generations end and restart, compares succeed and fail), with
/// binary edge cases (a 0x00 key, 0xFF keys whose prefix end is "all keys >=", an empty value).
/// </summary>
/// <remarks>
/// Every prefix here covers at most 12 keys. etcd 3.4 sorts a range by a non-key target with Go's
/// sort.Sort, whose pdqsort is an insertion sort (stable: ties stay in key order) up to 12 elements
/// and unstable beyond; the generator sorts by a non-key target only within one of these prefixes, so
/// every recorded order is the one a stable sort gives and a replay can demand it exactly.
/// </remarks>
internal static class KeySpace
{
    public static readonly byte[][] Keys =
    [
        .. new[] { "a", "a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "b", "b/1", "b/2", "b/3", "b/4", "c", "zz/1" }.Select(Encoding.UTF8.GetBytes),
        [(byte)'a', (byte)'/', 0xFF],
        [0x00],
        [0x01, (byte)'x'],
        [0xFF],
        [0xFF, 0xFF],
    ];

    /// <summary>Prefixes whose ranges hold at most 12 of <see cref="Keys"/> (see remarks).</summary>
    public static readonly byte[][] Prefixes =
    [
        .. new[] { "a/", "b/", "a", "b", "a/3", "zz" }.Select(Encoding.UTF8.GetBytes),
        [0xFF],
        [0x01],
    ];

    public static readonly byte[][] Values =
    [
        [],
        .. new[] { "v1", "v2", "v3", "x", "hello world" }.Select(Encoding.UTF8.GetBytes),
        [0x00, 0xFF, 0x7F],
    ];

    /// <summary>etcd's prefix end: the prefix with its last non-0xFF byte incremented and the rest cut;
    /// a prefix of only 0xFF bytes has none, and etcd then means "every key >= prefix" ("\0").</summary>
    public static byte[] PrefixEnd(byte[] prefix)
    {
        for (int i = prefix.Length - 1; i >= 0; i--)
        {
            if (prefix[i] < 0xFF)
            {
                byte[] end = prefix[..(i + 1)];
                end[i]++;
                return end;
            }
        }

        return [0x00];
    }

    /// <summary>Whether <paramref name="key"/> lies in [start, end) with etcd's conventions: an empty
    /// end is the single key, "\0" means every key >= start.</summary>
    public static bool Covers(byte[] start, byte[] end, byte[] key)
    {
        if (end.Length == 0)
        {
            return key.AsSpan().SequenceEqual(start);
        }

        bool aboveStart = key.AsSpan().SequenceCompareTo(start) >= 0;
        return end is [0x00] ? aboveStart : aboveStart && key.AsSpan().SequenceCompareTo(end) < 0;
    }
}
