using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// A consistent, point-in-time copy of a store: a B+tree file (the store's own format, docs/formats.md)
/// holding exactly the state as of one applied revision — every revision kept since the last
/// compaction, the compaction mark, the leases, and for a replicated store its member registry and
/// consistent index. What etcd's <c>Maintenance.Snapshot</c> streams (etcd's is a bbolt file; this
/// is ours). Made by <see cref="Replication.ReplicatedStore.CreateBackupAsync"/>.
/// </summary>
/// <remarks>
/// <para>The copy is a compact file built beside the store (in its directory, named
/// <c>mvcc.db.backup-*</c>) from one read transaction, so writes go on meanwhile and are not in it;
/// it is deleted when the backup is disposed. <see cref="SizeBytes"/> and <see cref="Sha256"/> are
/// known before any byte is read. To restore, save the bytes as <c>mvcc.db</c> in an empty directory
/// and open it with <see cref="MvccStore.Open(string, MvccStoreOptions?)"/>.</para>
/// <para>Thread-safety: read it once, from one caller at a time. Dispose it.</para>
/// </remarks>
public sealed class StoreBackup : IAsyncDisposable
{
    /// <summary>The chunk size <see cref="ReadChunksAsync"/> uses by default: 32 KiB, as etcd sends its snapshot.</summary>
    public const int DefaultChunkSizeBytes = 32 * 1024;

    private readonly IFileSystem _fileSystem;
    private readonly string _path;
    private readonly byte[] _sha256;
    private readonly Action _onDispose;
    private int _disposed;

    internal StoreBackup(IFileSystem fileSystem, string path, long sizeBytes, byte[] sha256, long revision, long compactRevision, ulong consistentIndex, Action onDispose)
    {
        _fileSystem = fileSystem;
        _path = path;
        SizeBytes = sizeBytes;
        _sha256 = sha256;
        Revision = revision;
        CompactRevision = compactRevision;
        ConsistentIndex = consistentIndex;
        _onDispose = onDispose;
    }

    /// <summary>The store's revision in the copy: every write up to it is in, none after it.</summary>
    public long Revision { get; }

    /// <summary>The compact revision in the copy (-1 if the store was never compacted).</summary>
    public long CompactRevision { get; }

    /// <summary>The consistent index in the copy: the last Raft entry applied to it (0 for a store without Raft).</summary>
    public ulong ConsistentIndex { get; }

    /// <summary>The copy's length in bytes (a whole number of B+tree pages).</summary>
    public long SizeBytes { get; }

    /// <summary>The SHA-256 of the copy's bytes (32 bytes): what etcd appends to its snapshot stream.</summary>
    public ReadOnlyMemory<byte> Sha256 => _sha256;

    /// <summary>
    /// The copy's bytes in order, in chunks of <paramref name="chunkSizeBytes"/> (the last one may be
    /// shorter). A chunk is valid until the enumeration moves on (one buffer is reused). The bytes
    /// are hashed as they are read; if they do not hash to <see cref="Sha256"/> (the file changed
    /// on disk since the backup was made) the enumeration throws at its end, after the last chunk.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="chunkSizeBytes"/> is not positive.</exception>
    /// <exception cref="ObjectDisposedException">The backup was disposed.</exception>
    /// <exception cref="CorruptionException">The bytes read do not hash to <see cref="Sha256"/>, or the file's length changed.</exception>
    public async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadChunksAsync(int chunkSizeBytes = DefaultChunkSizeBytes, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkSizeBytes);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        using var file = _fileSystem.Open(_path, FileOpenMode.ReadOnly);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[(int)Math.Min(chunkSizeBytes, Math.Max(SizeBytes, 1))];
        long offset = 0;
        while (offset < SizeBytes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int length = (int)Math.Min(buffer.Length, SizeBytes - offset);
            int read = 0;
            while (read < length)
            {
                int n = file.Read(offset + read, buffer.AsSpan(read, length - read));
                if (n == 0)
                {
                    throw new CorruptionException(_path, offset + read, $"the backup file ended at {offset + read} bytes; it was {SizeBytes} bytes when made");
                }

                read += n;
            }

            hash.AppendData(buffer, 0, length);
            offset += length;
            yield return buffer.AsMemory(0, length);

            // IStorageFile reads are synchronous: give the thread back between chunks, so one large
            // backup read by a slow consumer does not hold a thread-pool thread throughout.
            await Task.Yield();
        }

        if (!hash.GetHashAndReset().AsSpan().SequenceEqual(_sha256))
        {
            throw new CorruptionException(_path, 0, "the backup file's bytes changed on disk after the backup was made (SHA-256 mismatch)");
        }
    }

    /// <summary>Copies the whole backup to <paramref name="destination"/> (see <see cref="ReadChunksAsync"/> for the checks).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="destination"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The backup was disposed.</exception>
    /// <exception cref="CorruptionException">The bytes read do not hash to <see cref="Sha256"/>.</exception>
    public async ValueTask CopyToAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        await foreach (var chunk in ReadChunksAsync(DefaultChunkSizeBytes, cancellationToken).ConfigureAwait(false))
        {
            await destination.WriteAsync(chunk, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes the copy's file (once). A read in progress fails.</summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            try
            {
                if (_fileSystem.FileExists(_path))
                {
                    _fileSystem.DeleteFile(_path);
                }
            }
            finally
            {
                _onDispose();
            }
        }

        return ValueTask.CompletedTask;
    }
}
