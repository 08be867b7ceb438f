namespace EmbeddedRaft.TestSupport.IO;

/// <summary>
/// One simulated file: its durable image, its current image and the operations pending between
/// them. Always used under the owning file system's lock.
/// </summary>
/// <remarks>Invariant: applying <see cref="_pending"/> in order to the durable image yields the current image.</remarks>
internal sealed class Inode(long id)
{
    private readonly List<PendingOperation> _pending = [];
    private long _operationsAppended;
    private byte[] _durable = [];
    private long _durableLength;
    private byte[] _current = [];

    public long Id { get; } = id;

    public long CurrentLength { get; private set; }

    public int Read(long offset, Span<byte> buffer)
    {
        if (offset >= CurrentLength)
        {
            return 0;
        }

        int count = (int)Math.Min(buffer.Length, CurrentLength - offset);
        _current.AsSpan((int)offset, count).CopyTo(buffer);
        return count;
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        var copy = data.ToArray();
        CurrentLength = ApplyWrite(ref _current, CurrentLength, offset, copy);
        _pending.Add(PendingOperation.ForWrite(offset, copy));
        _operationsAppended++;
    }

    public void SetLength(long length)
    {
        CurrentLength = ApplySetLength(ref _current, CurrentLength, length);
        _pending.Add(PendingOperation.ForLength(length));
        _operationsAppended++;
    }

    /// <summary>Marks the operations done so far, for <see cref="Flush(long)"/>.</summary>
    public long OperationMark => _operationsAppended;

    /// <summary>
    /// Makes durable the pending operations done before <paramref name="mark"/> (an earlier
    /// <see cref="OperationMark"/>), as fdatasync does for the writes that returned before it was
    /// called; later ones stay pending, to be kept, dropped or torn by a crash.
    /// </summary>
    public void Flush(long mark)
    {
        long firstPending = _operationsAppended - _pending.Count;
        int count = (int)Math.Clamp(mark - firstPending, 0, _pending.Count);
        for (int i = 0; i < count; i++)
        {
            var operation = _pending[i];
            _durableLength = operation.Data is null
                ? ApplySetLength(ref _durable, _durableLength, operation.Offset)
                : ApplyWrite(ref _durable, _durableLength, operation.Offset, operation.Data);
        }

        _pending.RemoveRange(0, count);
    }

    /// <summary>What a crash leaves: each pending write kept, dropped or torn by sector; each length change kept or dropped.</summary>
    public void ResolveCrash(Random random, bool dropAll = false)
    {
        foreach (var operation in _pending)
        {
            if (dropAll)
            {
                // Nothing unflushed reached the disk (no random draw: the outcome is the same for every seed).
                continue;
            }

            if (operation.Data is null)
            {
                if (random.Next(2) == 0)
                {
                    _durableLength = ApplySetLength(ref _durable, _durableLength, operation.Offset);
                }

                continue;
            }

            switch (random.Next(10))
            {
                case < 4: // kept whole
                    _durableLength = ApplyWrite(ref _durable, _durableLength, operation.Offset, operation.Data);
                    break;
                case < 7: // dropped whole
                    break;
                default: // torn: each sector it touches independently reached the disk or not
                    TearInto(random, operation);
                    break;
            }
        }

        _pending.Clear();
        _current = _durable.AsSpan(0, (int)_durableLength).ToArray();
        CurrentLength = _durableLength;
    }

    public void FlipBit(long offset, byte mask)
    {
        if (offset < 0 || offset >= CurrentLength)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"Offset is outside the file (length {CurrentLength}).");
        }

        _current[offset] ^= mask;
        if (offset < _durableLength)
        {
            _durable[offset] ^= mask;
        }

        // A flipped bit in a byte that a pending write will overwrite is overwritten on flush, as on a real disk.
    }

    private void TearInto(Random random, PendingOperation operation)
    {
        const int Sector = FaultInjectingFileSystem.SectorSizeBytes;
        long start = operation.Offset;
        long end = start + operation.Data!.Length;
        for (long sectorStart = start - (start % Sector); sectorStart < end; sectorStart += Sector)
        {
            long pieceStart = Math.Max(sectorStart, start);
            long pieceEnd = Math.Min(sectorStart + Sector, end);
            if (random.Next(2) == 0)
            {
                var piece = operation.Data.AsSpan((int)(pieceStart - start), (int)(pieceEnd - pieceStart)).ToArray();
                _durableLength = ApplyWrite(ref _durable, _durableLength, pieceStart, piece);
            }
        }
    }

    private static long ApplyWrite(ref byte[] image, long length, long offset, byte[] data)
    {
        long end = offset + data.Length;
        EnsureCapacity(ref image, end);
        data.CopyTo(image.AsSpan((int)offset));
        return Math.Max(length, end);
    }

    private static long ApplySetLength(ref byte[] image, long length, long newLength)
    {
        EnsureCapacity(ref image, newLength);
        if (newLength < length)
        {
            // Bytes past the end must read as zeros if the file grows again.
            image.AsSpan((int)newLength, (int)(length - newLength)).Clear();
        }

        return newLength;
    }

    private static void EnsureCapacity(ref byte[] image, long needed)
    {
        if (needed > Array.MaxLength)
        {
            throw new IOException($"The simulated file system holds files up to {Array.MaxLength} bytes; {needed} requested.");
        }

        if (image.Length < needed)
        {
            var bigger = new byte[Math.Max(needed, Math.Min(Array.MaxLength, (long)image.Length * 2))];
            image.CopyTo(bigger, 0);
            image = bigger;
        }
    }

    /// <summary>A write (Data holds the bytes) or a length change (Data is null, Offset is the length).</summary>
    private readonly record struct PendingOperation(long Offset, byte[]? Data)
    {
        public static PendingOperation ForWrite(long offset, byte[] data) => new(offset, data);

        public static PendingOperation ForLength(long length) => new(length, null);
    }
}
