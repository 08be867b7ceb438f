using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// etcd's <c>HashByRev</c> over this store's encoding: CRC-32C of the revision bucket's name, then
/// of each stored revision's key and value bytes in revision order, skipping revisions above the
/// hashed one and, at or below the compact revision, those the compaction does not keep (unless
/// nothing is kept, as etcd). The B+tree snapshot and the pending batch are merged; a revision in both counts once.
/// </summary>
internal static class KvHash
{
    public static uint Compute(Bucket keys, List<PendingBatch.Entry> pending, long atMain, long compactMain, HashSet<Revision> keep)
    {
        uint crc = Append(0, MetaKeys.KeyBucketNameBytes);
        var cursor = keys.CreateCursor();
        bool more = cursor.First();
        int p = 0;
        while (true)
        {
            byte[]? pendingKey = p < pending.Count ? RevisionKey.Encode(pending[p].Revision, pending[p].Tombstone) : null;
            if (more && (pendingKey is null || cursor.Key.SequenceCompareTo(pendingKey) <= 0))
            {
                if (pendingKey is not null && cursor.Key.SequenceEqual(pendingKey))
                {
                    p++;
                }

                RevisionKey.TryDecode(cursor.Key, out var revision, out _);
                if (revision.Main > atMain)
                {
                    more = false;
                    continue;
                }

                if (Included(revision, compactMain, keep))
                {
                    crc = Append(crc, cursor.Key);
                    crc = Append(crc, cursor.Value);
                }

                more = cursor.Next();
            }
            else if (pendingKey is not null)
            {
                var revision = pending[p].Revision;
                if (Included(revision, compactMain, keep))
                {
                    crc = Append(crc, pendingKey);
                    crc = Append(crc, pending[p].StoredValue.Span);
                }

                p++;
            }
            else
            {
                return crc;
            }
        }
    }

    private static bool Included(Revision revision, long compactMain, HashSet<Revision> keep) =>
        revision.Main > compactMain || keep.Count == 0 || keep.Contains(revision);

    /// <summary>CRC-32C (Castagnoli), continued from <paramref name="crc"/>.</summary>
    private static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint state = ~crc;
        foreach (byte b in data)
        {
            state = System.Numerics.BitOperations.Crc32C(state, b);
        }

        return ~state;
    }
}
