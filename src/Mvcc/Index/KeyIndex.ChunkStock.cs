using System.Runtime.InteropServices;

namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The key index's chunk arrays, and the stock of them kept ready for appends past the last key.
/// </summary>
internal sealed partial class KeyIndex
{
    /// <summary>Sets of chunk arrays made ready on a thread-pool thread, or null: every chunk's arrays allocated where it is made.</summary>
    private ChunkStock? _stock;

    /// <summary>True once <see cref="KeepChunksReady"/> was called.</summary>
    public bool KeepsChunksReady => _stock is not null;

    /// <summary>
    /// From now on, appends past the last key (keys written in order) take their new chunk's arrays
    /// from a small stock that a thread-pool thread allocates and touches, so the writer does not
    /// pay the pinned heap's allocation and the page faults of the fresh memory (in a profile of
    /// in-order puts, about a seventh of the writer's CPU: docs/benchmarks.md, "MVCC in-order puts,
    /// session 17"). For a store whose writer has a thread of its own (not a deterministic
    /// scheduler: the refill is work on the thread pool). Writer thread, as every change.
    /// </summary>
    public void KeepChunksReady() => _stock ??= new ChunkStock();

    /// <summary>The three pinned arrays a <see cref="Chunk"/> is made of (see the remarks on <see cref="KeyIndex"/>).</summary>
    private sealed class ChunkArrays
    {
        private ChunkArrays(int keyBytesCapacity)
        {
            Prefixes = GC.AllocateUninitializedArray<ulong>(MaxChunkCount + 1, pinned: true);
            Entries = GC.AllocateUninitializedArray<Chunk.Entry>(MaxChunkCount + 1, pinned: true);
            KeyBytes = GC.AllocateUninitializedArray<byte>(keyBytesCapacity, pinned: true);
        }

        public ulong[] Prefixes { get; }

        public Chunk.Entry[] Entries { get; }

        public byte[] KeyBytes { get; }

        /// <summary>Fresh arrays, uninitialized (a chunk reads no slot it has not written).</summary>
        public static ChunkArrays Allocate(int keyBytesCapacity) => new(keyBytesCapacity);

        /// <summary>Fresh arrays with every page written once, so the process has its memory before a chunk uses them.</summary>
        public static ChunkArrays AllocateTouched(int keyBytesCapacity)
        {
            var arrays = new ChunkArrays(keyBytesCapacity);
            Touch(MemoryMarshal.AsBytes(arrays.Prefixes.AsSpan()));
            Touch(MemoryMarshal.AsBytes(arrays.Entries.AsSpan()));
            Touch(arrays.KeyBytes);
            return arrays;
        }

        /// <summary>Writes a zero every 4 KiB (and at the end): the first write to a page is what faults it in.</summary>
        private static void Touch(Span<byte> bytes)
        {
            if (bytes.IsEmpty)
            {
                return;
            }

            for (int i = 0; i < bytes.Length; i += 4096)
            {
                bytes[i] = 0;
            }

            bytes[^1] = 0;
        }
    }

    /// <summary>
    /// Up to <see cref="Target"/> sets of <see cref="ChunkArrays"/> for the next appended chunks,
    /// refilled by one thread-pool work item at a time once half are taken.
    /// </summary>
    /// <remarks>
    /// Sets are sized for the key length of the last append (<see cref="TryTake"/>'s capacity): when
    /// it changes, the ready sets are dropped and the next refill makes the new size. The memory it
    /// holds is bounded: at most <see cref="Target"/> sets (about 400 KB for keys of 16 bytes, 530 KB
    /// for 32 bytes or more), left unused when appends stop. A refill that fails to allocate stops
    /// quietly: the writer then allocates its chunks itself, where the failure is reported.
    /// Thread-safety: <see cref="TryTake"/> on the writer thread, the refill on a pool thread; the
    /// ready sets and the sizes are guarded by one lock, held for no allocation.
    /// </remarks>
    private sealed class ChunkStock
    {
        /// <summary>Sets kept ready: 8,192 keys' worth of chunks (half a second of the writer at its fastest refills in the background at 8).</summary>
        private const int Target = 16;

        private readonly Lock _gate = new();
        private readonly Stack<ChunkArrays> _ready = new();
        private int _keyBytesCapacity;
        private bool _refilling;

        /// <summary>A ready set for a chunk of keys needing <paramref name="keyBytesCapacity"/> bytes, or null; starts a refill when the stock is at half or below.</summary>
        public ChunkArrays? TryTake(int keyBytesCapacity)
        {
            ChunkArrays? taken = null;
            bool refill = false;
            lock (_gate)
            {
                if (_keyBytesCapacity != keyBytesCapacity)
                {
                    _ready.Clear();
                    _keyBytesCapacity = keyBytesCapacity;
                }
                else if (_ready.Count > 0)
                {
                    taken = _ready.Pop();
                }

                if (!_refilling && _ready.Count <= Target / 2)
                {
                    _refilling = true;
                    refill = true;
                }
            }

            if (refill)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static stock => stock.Refill(), this, preferLocal: false);
            }

            return taken;
        }

        private void Refill()
        {
            try
            {
                while (true)
                {
                    int capacity;
                    lock (_gate)
                    {
                        if (_ready.Count >= Target)
                        {
                            _refilling = false;
                            return;
                        }

                        capacity = _keyBytesCapacity;
                    }

                    var arrays = ChunkArrays.AllocateTouched(capacity);
                    lock (_gate)
                    {
                        // A set of a size no longer asked for is dropped (the loop makes the new one).
                        if (capacity == _keyBytesCapacity)
                        {
                            _ready.Push(arrays);
                        }
                    }
                }
            }
            catch (OutOfMemoryException)
            {
                // No stock: the writer allocates its chunks itself and meets the failure there.
                lock (_gate)
                {
                    _refilling = false;
                }
            }
        }
    }
}
