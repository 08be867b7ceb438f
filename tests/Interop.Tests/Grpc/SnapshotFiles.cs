using System.Security.Cryptography;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>
/// What a user does with a snapshot saved from our endpoint: checks etcd's SHA-256 trailer and opens
/// the rest as a store (the file is the member's B+tree: put it as <c>mvcc.db</c> in a directory).
/// </summary>
internal static class SnapshotFiles
{
    /// <summary>
    /// Splits a saved snapshot into the database and its trailer as etcdctl does (the length mod 512
    /// is the 32-byte SHA-256), checks the trailer, and opens the database as a store in a new
    /// directory under <paramref name="directory"/>.
    /// </summary>
    public static MvccStore OpenAsStore(byte[] saved, string directory)
    {
        Assert.That(saved.Length % 512, Is.EqualTo(SHA256.HashSizeInBytes), "etcdctl's rule: the database is whole 512-byte sectors, the SHA-256 follows");
        byte[] database = saved[..^SHA256.HashSizeInBytes];
        Assert.That(saved[^SHA256.HashSizeInBytes..], Is.EqualTo(SHA256.HashData(database)), "the trailer is the SHA-256 of the database bytes");
        string storeDirectory = Path.Combine(directory, "restored-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(storeDirectory);
        File.WriteAllBytes(Path.Combine(storeDirectory, "mvcc.db"), database);
        return MvccStore.Open(storeDirectory);
    }
}
