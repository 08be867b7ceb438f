using System.Buffers;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Reads exact lengths from a stream through a pooled buffer (one stream read serves many
/// records), checksumming what it hands out.
/// </summary>
internal sealed class BTreeImageReader(Stream source)
{
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BTreeImage.BufferSizeBytes);
    private int _start;
    private int _end;
    private uint _crc;

    /// <summary>Bytes handed out so far: the stream offset of the next record.</summary>
    public long Position { get; private set; }

    /// <summary>The CRC of every byte handed out so far.</summary>
    public uint ChecksumSoFar() => _crc;

    /// <summary>Reads exactly <paramref name="length"/> bytes; the memory is valid until the next call.</summary>
    public async ValueTask<ReadOnlyMemory<byte>> ReadAsync(int length, CancellationToken cancellationToken)
    {
        if (_end - _start < length)
        {
            await FillAsync(length, cancellationToken).ConfigureAwait(false);
        }

        var memory = _buffer.AsMemory(_start, length);
        _start += length;
        _crc = Crc32C.Append(_crc, memory.Span);
        Position += length;
        return memory;
    }

    private async ValueTask FillAsync(int length, CancellationToken cancellationToken)
    {
        int buffered = _end - _start;
        if (_buffer.Length < length)
        {
            // Only an entry with a large value needs more than the default buffer; the caller
            // checked the length against the destination's limits before asking.
            var larger = ArrayPool<byte>.Shared.Rent(length);
            _buffer.AsSpan(_start, buffered).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }
        else
        {
            _buffer.AsSpan(_start, buffered).CopyTo(_buffer);
        }

        _start = 0;
        _end = buffered;
        int read = await source.ReadAtLeastAsync(_buffer.AsMemory(_end), length - buffered, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
        _end += read;
        if (_end < length)
        {
            throw BTreeImage.Malformed(Position + _end, "the stream ends before the image's end record (truncated)");
        }
    }

    public void Return() => ArrayPool<byte>.Shared.Return(_buffer);
}
