using EmbeddedRaft.Interop.Tests.Grpc;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Google.Protobuf;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;

namespace EmbeddedRaft.Interop.Tests.Etcdctl;

/// <summary>
/// `etcdctl snapshot save` against our cluster writes a file that is our store: it opens as an
/// MvccStore holding every key the member held at the snapshot's revision. (`etcdctl snapshot
/// restore` and `snapshot status` read bbolt files, so they cannot read it: our snapshot is our
/// store's format, as etcd's is bbolt's.)
/// </summary>
[TestFixture]
[Parallelizable(ParallelScope.None)]
public sealed class EtcdctlSnapshotTests
{
    [Test]
    public async Task ASnapshotSavedByEtcdctlOpensAsAStoreWithEveryKeyAtItsRevision()
    {
        await using OurEtcdCluster cluster = await OurEtcdCluster.StartOursAsync();
        using var client = new EtcdClients(cluster.Cluster.Members[1].ClientUrl);
        var random = new Random(1919);
        TestContext.Out.WriteLine("seed 1919");
        PutResponse last = null!;
        for (int i = 0; i < 300; i++)
        {
            string key = $"s/{random.Next(60):D2}";
            if (random.Next(6) == 0)
            {
                await client.Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes(key) });
            }
            else
            {
                last = await client.Kv.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"{i}:{new string('x', random.Next(400))}") });
            }
        }

        using var etcdctl = new EtcdctlRunner(cluster);
        Assert.That(await etcdctl.RunAsync("@2 etcdctl snapshot save $TMPDIR/backup.db"), Is.EqualTo(new[] { "Snapshot saved at $TMPDIR/backup.db" }));

        byte[] saved = await File.ReadAllBytesAsync(Path.Combine(etcdctl.TemporaryDirectory, "backup.db"));
        using Mvcc.MvccStore restored = SnapshotFiles.OpenAsStore(saved, etcdctl.TemporaryDirectory);
        long revision = restored.Revision;
        Assert.That(revision, Is.GreaterThanOrEqualTo(last.Header.Revision), "every write the member applied before the snapshot");
        for (long at = 1; at <= revision; at += Math.Max(1, revision / 25))
        {
            RangeResponse live = await client.Kv.RangeAsync(new RangeRequest { Key = Bytes("\0"), RangeEnd = Bytes("\0"), Revision = at });
            var stored = restored.Range(new Mvcc.RangeRequest { Key = "\0"u8.ToArray(), RangeEnd = "\0"u8.ToArray(), Revision = at });
            Assert.That(stored.Kvs.Select(kv => (ByteString.CopyFrom(kv.Key.Span), ByteString.CopyFrom(kv.Value.Span), kv.CreateRevision, kv.ModRevision, kv.Version)),
                Is.EqualTo(live.Kvs.Select(kv => (kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version))),
                $"every key at revision {at}, as the cluster answers it");
        }
    }
}
