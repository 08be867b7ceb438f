using System.Buffers;
using System.Buffers.Binary;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// The write-only stream a snapshot's data is written to: it cuts the bytes into checksummed
/// chunks, each written to the file as soon as it is full, so a save holds one chunk in memory
/// whatever the snapshot's size. The snapshotter completes it (trailer) and makes it durable.
/// </summary>
internal sealed class SnapshotWriteStream : Stream
{
    private readonly IStorageFile _file;
    private readonly int _chunkSizeBytes;
    private byte[] _chunk;
    private int _filled;
    private long _fileOffset;
    private long _dataLength;
    private uint _dataCrc;
    private bool _completed;

    public SnapshotWriteStream(IStorageFile file, long dataOffset, int chunkSizeBytes)
    {
        _file = file;
        _fileOffset = dataOffset;
        _chunkSizeBytes = chunkSizeBytes;
        _chunk = ArrayPool<byte>.Shared.Rent(SnapshotFormat.ChunkHeaderSizeBytes + chunkSizeBytes);
    }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => !_completed;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _dataLength + _filled;
        set => throw new NotSupportedException();
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        while (!buffer.IsEmpty)
        {
            int count = Math.Min(buffer.Length, _chunkSizeBytes - _filled);
            buffer[..count].CopyTo(_chunk.AsSpan(SnapshotFormat.ChunkHeaderSizeBytes + _filled));
            _filled += count;
            buffer = buffer[count..];
            if (_filled == _chunkSizeBytes)
            {
                WriteChunk();
            }
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void WriteByte(byte value) => Write([value]);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    /// <summary>Durability is the snapshotter's business (one flush at the end); this does nothing.</summary>
    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Writes the last partial chunk and the trailer; returns the file's final length.</summary>
    public long Complete(uint headerCrc)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (_filled > 0)
        {
            WriteChunk();
        }

        Span<byte> trailer = stackalloc byte[SnapshotFormat.TrailerSizeBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[4..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(trailer[8..], _dataLength);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[16..], _dataCrc);
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[20..], Crc32C.Append(headerCrc, trailer[..20]));
        BinaryPrimitives.WriteUInt64LittleEndian(trailer[24..], SnapshotFormat.TrailerMagic);
        _file.Write(_fileOffset, trailer);
        _fileOffset += trailer.Length;
        _completed = true;
        return _fileOffset;
    }

    protected override void Dispose(bool disposing)
    {
        // The caller's writer may dispose the stream it was given; the snapshotter still completes it.
        if (disposing && _completed && _chunk.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_chunk);
            _chunk = [];
        }

        base.Dispose(disposing);
    }

    /// <summary>Returns the buffer whatever happened; called by the snapshotter.</summary>
    public void Release()
    {
        _completed = true;
        if (_chunk.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_chunk);
            _chunk = [];
        }
    }

    private void WriteChunk()
    {
        var data = _chunk.AsSpan(SnapshotFormat.ChunkHeaderSizeBytes, _filled);
        BinaryPrimitives.WriteInt32LittleEndian(_chunk, _filled);
        BinaryPrimitives.WriteUInt32LittleEndian(_chunk.AsSpan(4), Crc32C.Append(0, data));
        _dataCrc = Crc32C.Append(_dataCrc, data);
        int total = SnapshotFormat.ChunkHeaderSizeBytes + _filled;
        _file.Write(_fileOffset, _chunk.AsSpan(0, total));
        _fileOffset += total;
        _dataLength += _filled;
        _filled = 0;
    }
}
