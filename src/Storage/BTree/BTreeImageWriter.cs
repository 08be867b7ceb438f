using System.Buffers;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>A pooled write buffer that checksums what it hands to the stream; <see cref="BTreeImage"/>'s writing half.</summary>
internal sealed class BTreeImageWriter(Stream destination)
{
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(BTreeImage.BufferSizeBytes);
    private int _used;
    private uint _crc;

    public long BytesWritten { get; private set; }

    /// <summary>The free part of the buffer.</summary>
    public Span<byte> Span => _buffer.AsSpan(_used);

    public void Reserve(int bytes)
    {
        if (_buffer.Length - _used < bytes)
        {
            throw new InvariantViolationException("B+tree image: the writer's buffer has no room for a header.");
        }
    }

    public void Advance(int bytes) => _used += bytes;

    public async ValueTask EnsureAsync(int bytes, CancellationToken cancellationToken)
    {
        if (_buffer.Length - _used >= bytes)
        {
            return;
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
        if (_buffer.Length < bytes)
        {
            // Only a record header with a long key can need more than the default buffer.
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(bytes);
        }
    }

    /// <summary>The CRC of everything written so far, buffered bytes included.</summary>
    public uint ChecksumSoFar() => Crc32C.Append(_crc, _buffer.AsSpan(0, _used));

    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        _crc = Crc32C.Append(_crc, _buffer.AsSpan(0, _used));
        await destination.WriteAsync(_buffer.AsMemory(0, _used), cancellationToken).ConfigureAwait(false);
        BytesWritten += _used;
        _used = 0;
    }

    public void Return() => ArrayPool<byte>.Shared.Return(_buffer);
}
