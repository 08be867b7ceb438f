using System.Buffers.Binary;
using System.Text;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// The B+tree image: every bucket and entry of one read transaction as a byte stream, and the way
/// back from such a stream to a new database file. This is what a replicated store sends a lagging
/// follower as its Raft snapshot, so both directions run in bounded memory (one buffer plus the
/// largest single value) whatever the size of the tree.
/// </summary>
/// <remarks>
/// <para>The image is logical, not a copy of pages: it carries no free pages, no page size and no
/// freelist, so a database restored from it is compact and may use other options than the source,
/// and nothing of the source's on-disk layout leaks into a stream that crosses the network.</para>
/// <para>Format (all integers little-endian; documented in docs/btree.md, "Images"):</para>
/// <code>
/// header   "ERBTIMG\0" (8)  version u32 = 1  reserved u32 = 0
/// bucket   kind u8 = 1  name length u16  name (UTF-8)
/// entry    kind u8 = 2  key length u32  value length u32  key  value      (belongs to the last bucket)
/// end      kind u8 = 3  bucket count u64  entry count u64  source txid i64  CRC-32C u32
/// </code>
/// <para>The CRC-32C covers every byte before it, header included. Buckets come in the order
/// <see cref="Transaction.ListBuckets"/> gives, keys in ascending byte order within each bucket; a
/// reader refuses anything else, so a damaged or truncated stream can never restore a wrong tree:
/// restore writes to a side file and moves it into place only after the end record checks out.</para>
/// </remarks>
internal static class BTreeImage
{
    internal const int HeaderSizeBytes = 16;
    internal const uint Version = 1;
    internal const byte BucketKind = 1;
    internal const byte EntryKind = 2;
    internal const byte EndKind = 3;
    internal const int EndBodySizeBytes = 8 + 8 + 8 + 4;

    /// <summary>Entries a restore commits at a time (no-sync commits; one sync at the end).</summary>
    private const int EntriesPerCommit = 50_000;

    internal const int BufferSizeBytes = 64 * 1024;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static ReadOnlySpan<byte> Magic => "ERBTIMG\0"u8;

    /// <summary>Writes the snapshot of <paramref name="source"/> to <paramref name="destination"/>.</summary>
    public static async Task<long> WriteAsync(Transaction source, Stream destination, CancellationToken cancellationToken)
    {
        var writer = new BTreeImageWriter(destination);
        try
        {
            writer.Reserve(HeaderSizeBytes);
            Magic.CopyTo(writer.Span);
            BinaryPrimitives.WriteUInt32LittleEndian(writer.Span[8..], Version);
            BinaryPrimitives.WriteUInt32LittleEndian(writer.Span[12..], 0);
            writer.Advance(HeaderSizeBytes);

            long bucketCount = 0;
            long entryCount = 0;
            foreach (string name in source.ListBuckets())
            {
                cancellationToken.ThrowIfCancellationRequested();
                int nameLength = Encoding.UTF8.GetByteCount(name);
                await writer.EnsureAsync(1 + 2 + nameLength, cancellationToken).ConfigureAwait(false);
                writer.Span[0] = BucketKind;
                BinaryPrimitives.WriteUInt16LittleEndian(writer.Span[1..], checked((ushort)nameLength));
                Encoding.UTF8.GetBytes(name, writer.Span[3..]);
                writer.Advance(3 + nameLength);
                bucketCount++;

                var cursor = source.OpenBucket(name)!.CreateCursor();
                for (bool more = cursor.First(); more; more = cursor.Next())
                {
                    int keyLength = cursor.Key.Length;
                    int valueLength = cursor.Value.Length;
                    await writer.EnsureAsync(1 + 4 + 4 + keyLength, cancellationToken).ConfigureAwait(false);
                    writer.Span[0] = EntryKind;
                    BinaryPrimitives.WriteUInt32LittleEndian(writer.Span[1..], (uint)keyLength);
                    BinaryPrimitives.WriteUInt32LittleEndian(writer.Span[5..], (uint)valueLength);
                    cursor.Key.CopyTo(writer.Span[9..]);
                    writer.Advance(9 + keyLength);

                    // A value may be larger than the buffer: copy it in pieces. The cursor stays on
                    // its entry across the awaits (the read transaction's snapshot does not move).
                    for (int copied = 0; copied < valueLength;)
                    {
                        await writer.EnsureAsync(1, cancellationToken).ConfigureAwait(false);
                        int piece = Math.Min(valueLength - copied, writer.Span.Length);
                        cursor.Value.Slice(copied, piece).CopyTo(writer.Span);
                        writer.Advance(piece);
                        copied += piece;
                    }

                    entryCount++;
                }
            }

            await writer.EnsureAsync(1 + EndBodySizeBytes, cancellationToken).ConfigureAwait(false);
            writer.Span[0] = EndKind;
            BinaryPrimitives.WriteInt64LittleEndian(writer.Span[1..], bucketCount);
            BinaryPrimitives.WriteInt64LittleEndian(writer.Span[9..], entryCount);
            BinaryPrimitives.WriteInt64LittleEndian(writer.Span[17..], source.Id);
            writer.Advance(1 + 24);
            uint crc = writer.ChecksumSoFar();
            BinaryPrimitives.WriteUInt32LittleEndian(writer.Span, crc);
            writer.Advance(4);
            await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            return writer.BytesWritten;
        }
        finally
        {
            writer.Return();
        }
    }

    /// <summary>
    /// Creates a database at <paramref name="path"/> from an image. Writes to a side file first and
    /// moves it into place (rename, directory sync) only when the whole image checked out.
    /// </summary>
    public static async Task<BTreeImageSummary> RestoreAsync(
        IFileSystem fileSystem, string path, Stream source, BTreeOptions options, CancellationToken cancellationToken)
    {
        if (fileSystem.FileExists(path))
        {
            throw new IOException($"Cannot restore a B+tree image to '{path}': the file already exists.");
        }

        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? ".";
        if (!fileSystem.DirectoryExists(directory))
        {
            fileSystem.CreateDirectory(directory);
        }

        string sidePath = path + ".restoring";
        DeleteIfExists(fileSystem, sidePath);
        BTreeImageSummary summary;
        var database = BTreeDatabase.Open(fileSystem, sidePath, options);
        try
        {
            summary = await ReadIntoAsync(database, source, options, cancellationToken).ConfigureAwait(false);
            database.Sync();
        }
        catch
        {
            database.Dispose();
            DeleteIfExists(fileSystem, sidePath);
            DeleteIfExists(fileSystem, sidePath + ".lock");
            throw;
        }

        database.Dispose();
        DeleteIfExists(fileSystem, sidePath + ".lock");
        fileSystem.Rename(sidePath, path);
        fileSystem.SyncDirectory(directory);
        return summary;
    }

    private static async Task<BTreeImageSummary> ReadIntoAsync(
        BTreeDatabase database, Stream source, BTreeOptions options, CancellationToken cancellationToken)
    {
        var reader = new BTreeImageReader(source);
        Transaction? tx = null;
        try
        {
            var header = await reader.ReadAsync(HeaderSizeBytes, cancellationToken).ConfigureAwait(false);
            if (!header.Span[..8].SequenceEqual(Magic))
            {
                throw Malformed(0, "the stream does not start with the B+tree image magic \"ERBTIMG\\0\"");
            }

            uint version = BinaryPrimitives.ReadUInt32LittleEndian(header.Span[8..]);
            if (version != Version)
            {
                throw Malformed(8, $"image format version {version} is not supported (this build reads version {Version})");
            }

            long bucketCount = 0;
            long entryCount = 0;
            int inBatch = 0;
            Bucket? bucket = null;
            string? bucketName = null;
            byte[]? previousBucketName = null;
            byte[]? previousKey = null;
            int previousKeyLength = 0;
            while (true)
            {
                long recordOffset = reader.Position;
                byte kind = (await reader.ReadAsync(1, cancellationToken).ConfigureAwait(false)).Span[0];
                if (kind == BucketKind)
                {
                    int nameLength = BinaryPrimitives.ReadUInt16LittleEndian((await reader.ReadAsync(2, cancellationToken).ConfigureAwait(false)).Span);
                    if (nameLength == 0 || nameLength > options.MaxKeySizeBytes)
                    {
                        throw Malformed(recordOffset, $"a bucket name of {nameLength} bytes is outside 1..{options.MaxKeySizeBytes} (the destination's MaxKeySizeBytes)");
                    }

                    var nameBytes = await reader.ReadAsync(nameLength, cancellationToken).ConfigureAwait(false);
                    string name = DecodeName(recordOffset, nameBytes.Span);
                    if (previousBucketName is not null && nameBytes.Span.SequenceCompareTo(previousBucketName) <= 0)
                    {
                        throw Malformed(recordOffset, $"bucket '{name}' is out of order or repeated (buckets come in ascending byte order of their names)");
                    }

                    tx ??= database.BeginWrite();
                    bucket = tx.CreateBucket(name);
                    bucketName = name;
                    previousBucketName = nameBytes.ToArray();
                    previousKeyLength = -1;
                    bucketCount++;
                }
                else if (kind == EntryKind)
                {
                    if (bucket is null)
                    {
                        throw Malformed(recordOffset, "an entry comes before any bucket");
                    }

                    var lengths = (await reader.ReadAsync(8, cancellationToken).ConfigureAwait(false)).Span;
                    uint keyLength = BinaryPrimitives.ReadUInt32LittleEndian(lengths);
                    uint valueLength = BinaryPrimitives.ReadUInt32LittleEndian(lengths[4..]);

                    // Check the lengths before reading, so a hostile length never allocates.
                    if (keyLength == 0 || keyLength > (uint)options.MaxKeySizeBytes)
                    {
                        throw Malformed(recordOffset, $"a key of {keyLength} bytes is outside 1..{options.MaxKeySizeBytes} (the destination's MaxKeySizeBytes)");
                    }

                    if (valueLength > (uint)options.MaxValueSizeBytes)
                    {
                        throw Malformed(recordOffset, $"a value of {valueLength} bytes exceeds the destination's MaxValueSizeBytes of {options.MaxValueSizeBytes}");
                    }

                    var entry = await reader.ReadAsync((int)(keyLength + valueLength), cancellationToken).ConfigureAwait(false);
                    var key = entry.Span[..(int)keyLength];
                    if (previousKeyLength >= 0 && key.SequenceCompareTo(previousKey.AsSpan(0, previousKeyLength)) <= 0)
                    {
                        throw Malformed(recordOffset, $"a key in bucket '{bucketName}' is not greater than the key before it");
                    }

                    bucket.Put(key, entry.Span[(int)keyLength..]);
                    previousKey = previousKey is null || previousKey.Length < key.Length ? new byte[Math.Max(key.Length, 64)] : previousKey;
                    key.CopyTo(previousKey);
                    previousKeyLength = key.Length;
                    entryCount++;
                    if (++inBatch == EntriesPerCommit)
                    {
                        tx!.Commit(CommitDurability.NoSync);
                        tx = database.BeginWrite();
                        bucket = tx.OpenBucket(bucketName!)!;
                        inBatch = 0;
                    }
                }
                else if (kind == EndKind)
                {
                    var body = (await reader.ReadAsync(24, cancellationToken).ConfigureAwait(false)).Span;
                    long declaredBuckets = BinaryPrimitives.ReadInt64LittleEndian(body);
                    long declaredEntries = BinaryPrimitives.ReadInt64LittleEndian(body[8..]);
                    long sourceTxid = BinaryPrimitives.ReadInt64LittleEndian(body[16..]);
                    uint expectedCrc = reader.ChecksumSoFar();
                    uint crc = BinaryPrimitives.ReadUInt32LittleEndian((await reader.ReadAsync(4, cancellationToken).ConfigureAwait(false)).Span);
                    if (crc != expectedCrc)
                    {
                        throw Malformed(reader.Position - 4, $"the image checksum is 0x{crc:x8}, its bytes give 0x{expectedCrc:x8}");
                    }

                    if (declaredBuckets != bucketCount || declaredEntries != entryCount)
                    {
                        throw Malformed(recordOffset, $"the end record counts {declaredBuckets} buckets and {declaredEntries} entries, the image held {bucketCount} and {entryCount}");
                    }

                    tx?.Commit(CommitDurability.NoSync);
                    tx = null;
                    return new BTreeImageSummary(bucketCount, entryCount, sourceTxid, reader.Position);
                }
                else
                {
                    throw Malformed(recordOffset, $"unknown record kind {kind}");
                }
            }
        }
        finally
        {
            tx?.Dispose();
            reader.Return();
        }
    }

    private static string DecodeName(long offset, ReadOnlySpan<byte> bytes)
    {
        try
        {
            return s_strictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Malformed(offset, "a bucket name is not valid UTF-8");
        }
    }

    internal static InvalidDataException Malformed(long offset, string reason) =>
        new($"B+tree image is malformed at stream offset {offset}: {reason}.");

    private static void DeleteIfExists(IFileSystem fileSystem, string path)
    {
        if (fileSystem.FileExists(path))
        {
            fileSystem.DeleteFile(path);
        }
    }
}
