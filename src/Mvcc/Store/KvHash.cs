using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// etcd's <c>HashByRev</c> over this store's encoding: CRC-32C of the revision bucket's name, then
/// of each stored revision's key bytes and its value in the version 1 encoding (kinds 1 and 2) in
/// revision order, skipping revisions above the hashed one and, at or below the compact revision,
/// those the compaction does not keep (unless nothing is kept, as etcd). The B+tree snapshot and
/// the pending batch are merged; a revision in both counts once.
/// </summary>
/// <remarks>
/// The hash is defined over the decoded fields, written as version 1 writes them, not over the
/// stored bytes: so a member whose file holds version 1 entries (restored from an old image)
/// hashes equal to members that wrote the same history in version 2, and the hashes of histories
/// written before version 2 did not change. A value that does not decode (a damaged file) is hashed
/// as it is stored, as every value was before version 2: the damage then shows as a hash that differs
/// from the other members' (the replicated store's corruption alarm), instead of a hash that cannot
/// be computed, whose error the cross-member check would not see.
/// </remarks>
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

                RevisionKey.TryDecode(cursor.Key, out var revision, out bool tombstone);
                if (revision.Main > atMain)
                {
                    more = false;
                    continue;
                }

                if (Included(revision, compactMain, keep))
                {
                    crc = Append(crc, cursor.Key);
                    crc = AppendAsVersion1(crc, revision, tombstone, cursor.Value);
                }

                more = cursor.Next();
            }
            else if (pendingKey is not null)
            {
                var revision = pending[p].Revision;
                if (Included(revision, compactMain, keep))
                {
                    crc = Append(crc, pendingKey);
                    crc = AppendAsVersion1(crc, revision, pending[p].Tombstone, pending[p].StoredValue.Span);
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

    /// <summary>The hash continued over a stored value as version 1 encodes it: its header from the decoded fields, then its key and value (a value that does not decode: its stored bytes).</summary>
    private static uint AppendAsVersion1(uint crc, Revision revision, bool tombstone, ReadOnlySpan<byte> stored)
    {
        if (!StoredValue.TryDecode(stored, revision.Main, tombstone, out var decoded)
            || stored[StoredValue.KindOffset] is StoredValue.PutKind or StoredValue.TombstoneKind)
        {
            return Append(crc, stored);
        }

        Span<byte> header = stackalloc byte[StoredValue.Version1HeaderSizeBytes];
        StoredValue.WriteVersion1Header(header, tombstone ? StoredValue.TombstoneKind : StoredValue.PutKind, decoded.CreateRevision, decoded.Version, decoded.Lease, decoded.KeyLength);
        return Append(Append(crc, header), StoredValue.BodyOf(stored, decoded));
    }

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
