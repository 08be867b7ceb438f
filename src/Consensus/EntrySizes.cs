using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>Byte accounting over runs of entries.</summary>
internal static class EntrySizes
{
    /// <summary>
    /// The longest prefix of <paramref name="entries"/> whose total encoded size stays within
    /// <paramref name="maxBytes"/>, but never fewer than one entry (progress is always possible).
    /// </summary>
    public static ReadOnlyMemory<Entry> Limit(ReadOnlyMemory<Entry> entries, ulong maxBytes)
    {
        if (entries.Length <= 1 || maxBytes == ulong.MaxValue)
        {
            return entries;
        }

        var span = entries.Span;
        var size = (ulong)span[0].EncodedSizeBytes;
        for (var i = 1; i < span.Length; i++)
        {
            size += (ulong)span[i].EncodedSizeBytes;
            if (size > maxBytes)
            {
                return entries[..i];
            }
        }

        return entries;
    }

    /// <summary>Total encoded size (the unit of message and inflight byte limits).</summary>
    public static ulong Encoded(ReadOnlySpan<Entry> entries)
    {
        ulong size = 0;
        foreach (ref readonly var entry in entries)
        {
            size += (ulong)entry.EncodedSizeBytes;
        }

        return size;
    }

    /// <summary>
    /// Total data bytes of normal entries (the unit of the uncommitted-bytes quota): an empty
    /// entry costs nothing, and neither does a configuration change, so that the automatic leave
    /// of a joint configuration is never refused.
    /// </summary>
    public static ulong Payload(ReadOnlySpan<Entry> entries)
    {
        ulong size = 0;
        foreach (ref readonly var entry in entries)
        {
            if (entry.Type == EntryType.Normal)
            {
                size += (ulong)entry.Data.Length;
            }
        }

        return size;
    }
}
