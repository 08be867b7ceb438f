namespace EmbeddedRaft.Mvcc;

/// <summary>Range ends as etcd's clients compute them.</summary>
public static class KeyRange
{
    /// <summary>
    /// The range end that makes a request cover every key &gt;= its key: the single byte 0 (etcd's
    /// <c>clientv3.WithFromKey</c>). A new array each call.
    /// </summary>
    public static byte[] AllKeysFrom() => [0];

    /// <summary>
    /// The range end that makes a request cover every key starting with <paramref name="prefix"/>
    /// (etcd's <c>clientv3.GetPrefixRangeEnd</c>): the prefix with its last byte below 0xFF
    /// incremented and what follows dropped; the byte 0 (every key) when all its bytes are 0xFF.
    /// </summary>
    public static byte[] PrefixEnd(ReadOnlySpan<byte> prefix)
    {
        for (int i = prefix.Length - 1; i >= 0; i--)
        {
            if (prefix[i] < 0xFF)
            {
                var end = prefix[..(i + 1)].ToArray();
                end[i]++;
                return end;
            }
        }

        // No byte can be incremented: the prefix is empty or all 0xFF, so every key >= it matches.
        return AllKeysFrom();
    }
}
