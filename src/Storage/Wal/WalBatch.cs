using System.Buffers;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Frames appended back to back into one pooled buffer, destined for one contiguous range of one
/// segment: the unit of group commit. Filled by appenders under the log's lock, then handed to the
/// writer thread, which owns it until it returns it to the pool.
/// </summary>
internal sealed class WalBatch
{
    private byte[] _buffer = [];

    public long Sequence { get; private set; }

    /// <summary>Offset in the segment of the first byte of the buffer.</summary>
    public long StartOffset { get; private set; }

    /// <summary>Bytes of frames in the buffer. Invariant: a multiple of 8.</summary>
    public int Length { get; set; }

    public int Capacity => _buffer.Length;

    /// <summary>True when an appender waits for these frames (and all before them) to be durable.</summary>
    public bool NeedsSync { get; set; }

    /// <summary>The waiters to complete once the batch is durable.</summary>
    public List<WalAppendWaiter> Waiters { get; } = [];

    /// <summary>When set, the segment ends after this batch and the writer must create this one next.</summary>
    public SegmentCut? CutAfter { get; set; }

    public long EndOffset => StartOffset + Length;

    public Span<byte> Reserve(int frameSize)
    {
        if (Length + frameSize > _buffer.Length)
        {
            throw new InvariantViolationException("A frame was reserved past the end of its batch buffer.");
        }

        var span = _buffer.AsSpan(Length, frameSize);
        Length += frameSize;
        return span;
    }

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, Length);

    public void Reset(long sequence, long startOffset, int capacity)
    {
        Sequence = sequence;
        StartOffset = startOffset;
        Length = 0;
        NeedsSync = false;
        CutAfter = null;
        Waiters.Clear();
        EnsureCapacity(capacity);
    }

    /// <summary>Grows the buffer of an empty batch.</summary>
    public void EnsureCapacity(int capacity)
    {
        if (Length != 0)
        {
            throw new InvariantViolationException("Only an empty batch may change its buffer.");
        }

        if (_buffer.Length < capacity)
        {
            ReturnBuffer();
            _buffer = ArrayPool<byte>.Shared.Rent(capacity);
        }
    }

    public void ReturnBuffer()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
        }
    }
}
