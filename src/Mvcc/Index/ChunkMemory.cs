using System.Runtime.InteropServices;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// Native memory for the fixed arrays of one <see cref="KeyIndex"/>'s chunks (each key's prefix and
/// entry, the chunk's summary): blocks of one size, cut from slabs that grow to 2 MiB, the 2 MiB
/// ones aligned and advised for transparent huge pages on Linux.
/// </summary>
/// <remarks>
/// <para>Why: the index grows by fresh memory on the writer's thread (~24 B of fixed arrays per
/// in-order key), and on a virtual machine every first touch of a 4 KiB page is a page fault that
/// costs several microseconds of the thread's CPU (docs/benchmarks.md, "MVCC in-order puts,
/// session 21": ~4 µs per KiB on this project's 2-core VM, ~0.06 with 2 MiB pages). The runtime's
/// heaps are never advised for huge pages, so chunks on the pinned object heap took one fault per
/// 4 KiB; a 2 MiB slab here takes one per 2 MiB where the system has transparent huge pages in
/// <c>madvise</c> or <c>always</c> mode (elsewhere the advice is refused or ignored, and the slab
/// is ordinary memory). The first slabs are small (64 KiB, doubling), so a store with few keys does
/// not hold 2 MiB for its index.</para>
/// <para>Lifetime: a block is <see cref="Rent"/>ed by a chunk when it is made and
/// <see cref="Return"/>ed when the index drops the chunk (then reused by the next chunk); slabs are
/// freed only by the finalizer, once neither the index nor any of its chunks is reachable (each
/// chunk holds this object). The store reads and changes the index only inside its lock's
/// sections, whose release reads the store (and so keeps the index and this memory alive) after
/// the last use of a chunk's memory. Peak memory is kept until then, as the pinned heap kept its
/// holes.</para>
/// <para>Not thread-safe: used by the index's changes only (the store's writer, under the write
/// lock). Invariant: every block handed out is inside one slab, aligned to 64 bytes, and not on the
/// free list.</para>
/// </remarks>
internal sealed unsafe class ChunkMemory
{
    /// <summary>The largest slab: one transparent huge page on x86-64 and arm64 Linux.</summary>
    private const int HugeSlabBytes = 2 << 20;

    private const int FirstSlabBytes = 64 << 10;

    private const int BlockAlignmentBytes = 64;

    /// <summary><c>madvise</c> advice: back the range with transparent huge pages where the kernel can.</summary>
    private const int AdviseHugePage = 14;

    private readonly int _blockBytes;

    private readonly List<(nint Start, int Bytes)> _slabs = [];

    private readonly Stack<nint> _free = new();

    /// <summary>The next never-used block of the newest slab, and that slab's end.</summary>
    private nint _next;

    private nint _end;

    private int _nextSlabBytes = FirstSlabBytes;

    /// <exception cref="ArgumentOutOfRangeException">A block would not fit a first slab, or is not a multiple of 64 bytes.</exception>
    public ChunkMemory(int blockBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockBytes, FirstSlabBytes);
        if (blockBytes % BlockAlignmentBytes != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(blockBytes), blockBytes, $"A chunk block must be a multiple of {BlockAlignmentBytes} bytes.");
        }

        _blockBytes = blockBytes;
    }

    ~ChunkMemory()
    {
        foreach (var (start, bytes) in _slabs)
        {
            NativeMemory.AlignedFree((void*)start);
            GC.RemoveMemoryPressure(bytes);
        }
    }

    /// <summary>Bytes of native memory held (slabs), for tests.</summary>
    public long SlabBytes { get; private set; }

    /// <summary>A block of <c>blockBytes</c>, aligned to 64 bytes, its contents undefined.</summary>
    public nint Rent()
    {
        if (_free.TryPop(out nint reused))
        {
            return reused;
        }

        if (_end - _next < _blockBytes)
        {
            AddSlab();
        }

        nint block = _next;
        _next += _blockBytes;
        return block;
    }

    /// <summary>Gives back a block <see cref="Rent"/> handed out; its chunk must not use it again.</summary>
    /// <exception cref="InvariantViolationException">The block is not one of this memory's.</exception>
    public void Return(nint block)
    {
        bool inSlab = false;
        foreach (var (start, bytes) in _slabs)
        {
            if (block >= start && block + _blockBytes <= start + bytes)
            {
                inSlab = (block - start) % _blockBytes == 0;
                break;
            }
        }

        if (!inSlab)
        {
            throw new InvariantViolationException($"MVCC key index: a chunk block at 0x{block:x} returned to memory that did not hand it out.");
        }

        _free.Push(block);
    }

    private void AddSlab()
    {
        int bytes = _nextSlabBytes;
        bool huge = bytes == HugeSlabBytes;
        var start = (nint)NativeMemory.AlignedAlloc((nuint)bytes, (nuint)(huge ? HugeSlabBytes : BlockAlignmentBytes));
        GC.AddMemoryPressure(bytes);
        _slabs.Add((start, bytes));
        SlabBytes += bytes;
        if (huge && OperatingSystem.IsLinux())
        {
            // A hint: refused (EINVAL where the kernel has no transparent huge pages) or ignored
            // ("never"), the slab is ordinary memory, so the result is not checked.
            _ = NativeMethods.MAdvise(start, (nuint)bytes, AdviseHugePage);
        }

        // Whole blocks only: the slab's tail after its last block is never handed out.
        _next = start;
        _end = start + (bytes / _blockBytes * _blockBytes);
        _nextSlabBytes = Math.Min(HugeSlabBytes, bytes * 2);
    }
}
