using System.Buffers.Binary;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// Makes a store of format version 1 the way the builds before version 2 left them: every entry of
/// the revision bucket in the 29-byte header encoding (kinds 1 and 2) and <c>formatVersion</c> 1.
/// It rewrites a closed store's file in place, so any history the store can write (txns, leases,
/// compactions) becomes a version 1 file of the same history.
/// </summary>
internal static class Version1Stores
{
    /// <summary>Rewrites the closed store in <paramref name="directory"/> as version 1; returns how many entries it holds.</summary>
    public static int Rewrite(FaultInjectingFileSystem fs, string directory)
    {
        using var database = BTreeDatabase.Open(fs, directory + "/" + StoreLoader.FileName, MvccStoreOptions.Default.BTree);
        using var tx = database.BeginWrite();
        var keys = tx.OpenBucket(MetaKeys.KeyBucket)!;
        var entries = new List<(byte[] Key, byte[] Value)>();
        var cursor = keys.CreateCursor();
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            entries.Add((cursor.Key.ToArray(), cursor.Value.ToArray()));
        }

        foreach (var (key, value) in entries)
        {
            keys.Put(key, ToVersion1(key, value));
        }

        var version = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(version, MetaKeys.FormatVersion1);
        tx.OpenBucket(MetaKeys.MetaBucket)!.Put(MetaKeys.FormatVersionKey, version);
        tx.Commit(CommitDurability.Synced);
        return entries.Count;
    }

    /// <summary>A stored value of any kind in the version 1 encoding.</summary>
    public static byte[] ToVersion1(ReadOnlySpan<byte> revisionKey, ReadOnlySpan<byte> value)
    {
        Assert.That(RevisionKey.TryDecode(revisionKey, out var revision, out bool tombstone), Is.True);
        Assert.That(StoredValue.TryDecode(value, revision.Main, tombstone, out var decoded), Is.True, $"revision {revision} decodes");
        return StoredValue.EncodeVersion1(
            tombstone ? StoredValue.TombstoneKind : StoredValue.PutKind,
            StoredValue.KeyOf(value, decoded),
            tombstone ? default : StoredValue.ValueOf(value, decoded),
            decoded.CreateRevision,
            decoded.Version,
            decoded.Lease);
    }

    /// <summary>The store file's format version and how many entries of each kind (1 to 4) its revision bucket holds.</summary>
    public static (long FormatVersion, int[] Kinds) Inspect(FaultInjectingFileSystem fs, string directory)
    {
        using var database = BTreeDatabase.Open(fs, directory + "/" + StoreLoader.FileName, MvccStoreOptions.Default.BTree);
        using var tx = database.BeginRead();
        var kinds = new int[5];
        var cursor = tx.OpenBucket(MetaKeys.KeyBucket)!.CreateCursor();
        for (bool more = cursor.First(); more; more = cursor.Next())
        {
            kinds[cursor.Value[0]]++;
        }

        long format = BinaryPrimitives.ReadInt64BigEndian(tx.OpenBucket(MetaKeys.MetaBucket)!.Get(MetaKeys.FormatVersionKey));
        return (format, kinds);
    }

    /// <summary>Replaces the stored value of the revision whose B+tree key is <paramref name="revisionKey"/>.</summary>
    public static void Overwrite(FaultInjectingFileSystem fs, string directory, byte[] revisionKey, byte[] value)
    {
        using var database = BTreeDatabase.Open(fs, directory + "/" + StoreLoader.FileName, MvccStoreOptions.Default.BTree);
        using var tx = database.BeginWrite();
        var keys = tx.OpenBucket(MetaKeys.KeyBucket)!;
        Assert.That(keys.Get(revisionKey), Is.Not.Null, "the revision to overwrite is stored");
        keys.Put(revisionKey, value);
        tx.Commit(CommitDurability.Synced);
    }
}
