using System.Text;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Mvcc.Tests.Images;

/// <summary>
/// Stores as a replicated store runs them (no-sync, every write carrying the Raft index that
/// produced it, leases expired by no timer of their own), a seeded workload of puts, deletes, txns,
/// leases and compactions, and a description of everything a snapshot must carry.
/// </summary>
internal static class ImageTestSupport
{
    public const string SourceDirectory = "/data/source";

    public const string TargetDirectory = "/data/target";

    public static MvccStoreOptions Options(FakeTimeProvider clock) => new()
    {
        Durability = MvccDurability.NoSync,
        BatchLimit = 4,
        CompactionBatchLimit = 3,
        Leases = new LeaseOptions { TimeProvider = clock, RevokeExpired = false },
        Watch = new WatchOptions { TimeProvider = clock },
    };

    /// <summary>
    /// <paramref name="count"/> seeded writes, the i-th carrying consistent index <paramref name="firstIndex"/> + i,
    /// over a small key space with leases attached, moved and revoked, and (with <paramref name="compactions"/>) a compaction now and then.
    /// Returns the next consistent index.
    /// </summary>
    public static async Task<ulong> WriteAsync(MvccStore store, Random random, int count, ulong firstIndex, string valuePrefix, bool compactions = true)
    {
        ulong index = firstIndex;
        var leases = store.LeaseLeases().Leases.ToList();
        for (int i = 0; i < count; i++, index++)
        {
            string key = "k" + random.Next(12).ToString("D2", System.Globalization.CultureInfo.InvariantCulture);
            try
            {
                switch (random.Next(10))
                {
                    case 0:
                        leases.Add((await store.LeaseGrantAsync(random.Next(5, 60), random.Next(1, 1_000_000), index)).Id);
                        break;
                    case 1 when leases.Count > 0:
                        long revoked = leases[random.Next(leases.Count)];
                        leases.Remove(revoked);
                        await store.LeaseRevokeAsync(revoked, index);
                        break;
                    case 2:
                        await store.DeleteRangeAsync(new DeleteRangeRequest { Key = B(key), RangeEnd = B(key + "5") }, index);
                        break;
                    case 3:
                        await store.TxnAsync(
                            new TxnRequest
                            {
                                Compare = [new Compare { Key = B(key), Target = CompareTarget.Version, Result = CompareResult.Greater, Version = 1 }],
                                Success = [RequestOp.Put(new PutRequest { Key = B(key), Value = B($"{valuePrefix}txn{i}") })],
                                Failure = [RequestOp.DeleteRange(new DeleteRangeRequest { Key = B(key) })],
                            },
                            index);
                        break;
                    case 4 when compactions && random.Next(4) == 0 && store.Revision > store.CompactRevision + 2:
                        await store.CompactAsync(store.Revision - random.Next(2), physical: false, index);
                        break;
                    default:
                        long lease = leases.Count > 0 && random.Next(3) == 0 ? leases[random.Next(leases.Count)] : 0;
                        await store.PutAsync(new PutRequest { Key = B(key), Value = B($"{valuePrefix}{i}"), Lease = lease }, index);
                        break;
                }
            }
            catch (MvccException)
            {
                // A refusal (a lease id taken, a txn op etcd refuses): as a replicated store does, record the index anyway.
                await store.SetConsistentIndexAsync(index);
            }

            // Writes that changed nothing (a delete of nothing) carry their index too.
            Assert.That(store.ConsistentIndex, Is.EqualTo(index), $"write {i} recorded its consistent index");
        }

        return index;
    }

    /// <summary>Everything a restored store must equal: keys with their leases, leases with their keys, revision, compaction, consistent index, and the hash of the whole history.</summary>
    public static string Describe(MvccStore store)
    {
        var hash = store.HashKV();
        var all = store.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 } }).Kvs;
        string keys = string.Join(" ", all.Select(kv => $"{S(kv.Key)}={S(kv.Value)}@{kv.ModRevision}/{kv.CreateRevision}/{kv.Version}/{kv.Lease}"));
        return $"{Leases.LeaseModel.Describe(store, withRemaining: false)} | {keys} | compact {store.CompactRevision} | index {store.ConsistentIndex} | hash {hash.Hash:x8}";
    }

    /// <summary>The image of <paramref name="store"/> as bytes, and its consistent index.</summary>
    public static async Task<(byte[] Bytes, ulong Index)> ImageBytesAsync(MvccStore store)
    {
        await using var image = store.CaptureImage();
        using var stream = new MemoryStream();
        await image.WriteToAsync(stream, CancellationToken.None);
        return (stream.ToArray(), image.Index);
    }

    public static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    public static string S(ReadOnlyMemory<byte> bytes) => Encoding.UTF8.GetString(bytes.Span);

    public static IEnumerable<int> Seeds() => TestSeeds.Choose("IMAGE_SEED", "IMAGE_SOAK_SEEDS", first: 1, defaultCount: 3);
}
