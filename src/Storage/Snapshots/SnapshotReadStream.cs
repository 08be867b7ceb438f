using System.Buffers;
using System.Buffers.Binary;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// Reads a snapshot file: <see cref="OpenHeader"/> checks the header, then the stream returns the
/// data chunk by chunk, each checked before any of its bytes is returned, and checks the trailer
/// (total length, CRC of all data, trailer CRC, end of file) before it reports the end. Any failed
/// check throws <see cref="CorruptionException"/> naming the file and offset. One chunk in memory.
/// </summary>
internal sealed class SnapshotReadStream : Stream
{
    private const int MaxChunkSizeBytes = 16 * 1024 * 1024;

    private readonly IStorageFile _file;
    private readonly uint _headerCrc;
    private readonly long _fileLength;
    private byte[] _chunk;
    private int _chunkLength;
    private int _chunkPosition;
    private long _fileOffset;
    private long _dataLength;
    private uint _dataCrc;
    private bool _ended;

    private SnapshotReadStream(IStorageFile file, SnapshotFileMetadata metadata, uint headerCrc, long dataOffset)
    {
        _file = file;
        Metadata = metadata;
        _headerCrc = headerCrc;
        _fileOffset = dataOffset;
        _fileLength = file.Length;
        _chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
    }

    public SnapshotFileMetadata Metadata { get; }

    public string Path => _file.Path;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _dataLength - (_chunkLength - _chunkPosition);
        set => throw new NotSupportedException();
    }

    /// <summary>Opens <paramref name="file"/> (taking ownership) and checks its header.</summary>
    /// <exception cref="CorruptionException">The header is malformed or fails its crc.</exception>
    public static SnapshotReadStream OpenHeader(IStorageFile file, int maxMembershipSizeBytes)
    {
        try
        {
            Span<byte> fixedHeader = stackalloc byte[SnapshotFormat.FixedHeaderSizeBytes];
            if (file.Read(0, fixedHeader) != fixedHeader.Length)
            {
                throw new CorruptionException(file.Path, 0, "The file is shorter than a snapshot header.");
            }

            if (BinaryPrimitives.ReadUInt64LittleEndian(fixedHeader) != SnapshotFormat.HeaderMagic
                || BinaryPrimitives.ReadUInt32LittleEndian(fixedHeader[8..]) != SnapshotFormat.Version)
            {
                throw new CorruptionException(file.Path, 0, "Not a snapshot file of a known version (bad magic or version).");
            }

            int membershipLength = BinaryPrimitives.ReadInt32LittleEndian(fixedHeader[12..]);
            if (membershipLength < 0 || membershipLength > maxMembershipSizeBytes)
            {
                throw new CorruptionException(file.Path, 12, $"Membership length {membershipLength} is out of range (at most {maxMembershipSizeBytes}).");
            }

            var rest = new byte[membershipLength + sizeof(uint)];
            if (file.Read(SnapshotFormat.FixedHeaderSizeBytes, rest) != rest.Length)
            {
                throw new CorruptionException(file.Path, SnapshotFormat.FixedHeaderSizeBytes, "The file ends inside the header.");
            }

            uint stored = BinaryPrimitives.ReadUInt32LittleEndian(rest.AsSpan(membershipLength));
            uint computed = Crc32C.Append(Crc32C.Append(0, fixedHeader), rest.AsSpan(0, membershipLength));
            if (stored != computed)
            {
                throw new CorruptionException(file.Path, 0, $"The header fails its crc (stored {stored:x8}, computed {computed:x8}).");
            }

            var metadata = new SnapshotFileMetadata(
                BinaryPrimitives.ReadUInt64LittleEndian(fixedHeader[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(fixedHeader[24..]),
                rest.AsSpan(0, membershipLength));
            return new SnapshotReadStream(file, metadata, computed, SnapshotFormat.FixedHeaderSizeBytes + rest.Length);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public override int Read(Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_chunk.Length == 0, this);

        if (buffer.IsEmpty)
        {
            return 0;
        }

        if (_chunkPosition == _chunkLength && !ReadNextChunk())
        {
            return 0;
        }

        int count = Math.Min(buffer.Length, _chunkLength - _chunkPosition);
        _chunk.AsSpan(_chunkPosition, count).CopyTo(buffer);
        _chunkPosition += count;
        return count;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int ReadByte()
    {
        Span<byte> one = stackalloc byte[1];
        return Read(one) == 1 ? one[0] : -1;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Read(buffer.AsSpan(offset, count)));
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return new ValueTask<int>(Read(buffer.Span));
    }

    /// <summary>Reads to the end, checking everything; returns the data length. Checks <paramref name="cancellationToken"/> before each chunk.</summary>
    public long VerifyToEnd(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        while (ReadNextChunk())
        {
            cancellationToken.ThrowIfCancellationRequested();
        }

        return _dataLength;
    }

    public override void Flush()
    {
    }

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && _chunk.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_chunk);
            _chunk = [];
            _file.Dispose();
        }

        base.Dispose(disposing);
    }

    private bool ReadNextChunk()
    {
        if (_ended)
        {
            return false;
        }

        long offset = _fileOffset;
        Span<byte> header = stackalloc byte[SnapshotFormat.ChunkHeaderSizeBytes];
        if (_file.Read(offset, header) != header.Length)
        {
            throw new CorruptionException(Path, offset, "The file ends before the snapshot's trailer.");
        }

        int length = BinaryPrimitives.ReadInt32LittleEndian(header);
        if (length == 0)
        {
            ReadTrailer(offset);
            return false;
        }

        if (length < 0 || length > MaxChunkSizeBytes || length > _fileLength - offset - SnapshotFormat.ChunkHeaderSizeBytes)
        {
            throw new CorruptionException(Path, offset, $"Chunk length {length} is out of range.");
        }

        if (_chunk.Length < length)
        {
            ArrayPool<byte>.Shared.Return(_chunk);
            _chunk = ArrayPool<byte>.Shared.Rent(length);
        }

        var data = _chunk.AsSpan(0, length);
        if (_file.Read(offset + SnapshotFormat.ChunkHeaderSizeBytes, data) != length)
        {
            throw new CorruptionException(Path, offset, "The file ends inside a chunk.");
        }

        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
        uint computed = Crc32C.Append(0, data);
        if (stored != computed)
        {
            throw new CorruptionException(Path, offset, $"A data chunk fails its crc (stored {stored:x8}, computed {computed:x8}).");
        }

        _dataCrc = Crc32C.Append(_dataCrc, data);
        _dataLength += length;
        _fileOffset = offset + SnapshotFormat.ChunkHeaderSizeBytes + length;
        _chunkLength = length;
        _chunkPosition = 0;
        return true;
    }

    private void ReadTrailer(long offset)
    {
        Span<byte> trailer = stackalloc byte[SnapshotFormat.TrailerSizeBytes];
        if (_file.Read(offset, trailer) != trailer.Length)
        {
            throw new CorruptionException(Path, offset, "The file ends inside the trailer.");
        }

        uint storedTrailerCrc = BinaryPrimitives.ReadUInt32LittleEndian(trailer[20..]);
        if (storedTrailerCrc != Crc32C.Append(_headerCrc, trailer[..20])
            || BinaryPrimitives.ReadUInt64LittleEndian(trailer[24..]) != SnapshotFormat.TrailerMagic
            || BinaryPrimitives.ReadUInt32LittleEndian(trailer[4..]) != 0)
        {
            throw new CorruptionException(Path, offset, "The trailer fails its crc or magic.");
        }

        long length = BinaryPrimitives.ReadInt64LittleEndian(trailer[8..]);
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(trailer[16..]);
        if (length != _dataLength || crc != _dataCrc)
        {
            throw new CorruptionException(Path, offset, $"The chunks hold {_dataLength} bytes with crc {_dataCrc:x8}; the trailer says {length} bytes with crc {crc:x8}.");
        }

        if (_fileLength != offset + trailer.Length)
        {
            throw new CorruptionException(Path, offset + trailer.Length, $"{_fileLength - offset - trailer.Length} unexpected bytes after the trailer.");
        }

        _chunkLength = _chunkPosition = 0;
        _ended = true;
    }
}
