using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// Where <see cref="RaftNode{TResult}.ProposeAsync"/> writes its proposal envelopes: consecutive
/// slices of a reused pinned slab instead of a new array each, so the envelope bytes that live as
/// long as a put is in flight (the unstable log, the entry cache, messages, the apply: ~20–40 ms,
/// longer than a gen0 cycle under load) are not copied by every gen0 and gen1 collection
/// (docs/benchmarks.md, "Replicated puts, session 29").
/// </summary>
/// <remarks>
/// <para><b>Lifetime, decided by the collector.</b> Each slab is handed out wrapped in a new
/// <see cref="SlabLease"/>, a <see cref="MemoryManager{T}"/>: every envelope sliced from it is a
/// <see cref="ReadOnlyMemory{T}"/> that references the lease, so the lease is reachable exactly as
/// long as any holder of any of its envelopes is (a log's chunk or cache, a message, a Ready, a
/// committed batch, a pending proposal, a transport's queue). The slab goes back to this pool only
/// from the lease's finalizer, i.e. once the collector found no such holder: a slab is never
/// written again while an envelope in it can still be read through a <see cref="ReadOnlyMemory{T}"/>.
/// Readers take spans from the memory only while they hold it (or what holds it) — every reader in
/// this library does (the WAL's encoder, the codecs, the apply), as <see cref="Memory{T}"/>'s own
/// contract for a pooled <see cref="MemoryManager{T}"/> asks. The lease does not expose its array
/// (<see cref="MemoryMarshal.TryGetArray{T}"/> is false), so no holder can keep the bytes without it.</para>
/// <para><b>Bounded.</b> At most <see cref="MaxSlabs"/> slabs are ever created (pinned arrays, on the
/// pinned-object heap: never moved, never copied by a collection); when every one is leased (their
/// finalizers not yet run), an envelope gets an array of its own, as before. An envelope larger than
/// <see cref="LargestSlicedBytes"/> always does.</para>
/// <para>Thread-safety: any number of threads rent at once; they slice from one current lease by an
/// atomic add (no lock per envelope); a lease is replaced and a slab comes back under a short lock,
/// once per slab.</para>
/// </remarks>
internal sealed class EnvelopeSlabPool
{
    /// <summary>The pool every <see cref="RaftNode{TResult}"/> of the process uses: 64 KiB slabs, at most 512 of them (32 MiB).</summary>
    public static readonly EnvelopeSlabPool Shared = new(slabBytes: 64 * 1024, maxSlabs: 512);

    // Slabs given back by their lease's finalizer, oldest first, each with the gen0 collection count
    // at its return: leased again only once a later collection has completed (see Return). Under
    // _returnedLock, as are _created, _leased, _returned and the replacement of _current (a lease is
    // taken or given back once per slab's worth of envelopes, not per envelope).
    private readonly Queue<(byte[] Slab, int ReturnedAtCollection)> _returnedSlabs = new();
    private readonly Lock _returnedLock = new();

    // The lease envelopes are sliced from, shared by every proposing thread (one slab fills at the
    // process's proposal rate, so its lease dies young, ~the holders' time after its last envelope).
    private SlabLease? _current;
    private int _created;
    private long _leased;
    private long _returned;

    public EnvelopeSlabPool(int slabBytes, int maxSlabs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slabBytes, 256);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSlabs, 1);
        SlabBytes = slabBytes;
        MaxSlabs = maxSlabs;
        LargestSlicedBytes = slabBytes / 8;
    }

    public int SlabBytes { get; }

    public int MaxSlabs { get; }

    /// <summary>The largest envelope sliced from a slab (an eighth of one, so a slab left with less room wastes at most that).</summary>
    public int LargestSlicedBytes { get; }

    /// <summary>Slabs created so far (never more than <see cref="MaxSlabs"/>).</summary>
    public int CreatedSlabs
    {
        get
        {
            lock (_returnedLock)
            {
                return _created;
            }
        }
    }

    /// <summary>Leases handed out so far (a slab leased again counts again).</summary>
    public long LeasedSlabs
    {
        get
        {
            lock (_returnedLock)
            {
                return _leased;
            }
        }
    }

    /// <summary>Slabs given back by their lease's finalizer so far (each may be leased again).</summary>
    public long ReturnedSlabs
    {
        get
        {
            lock (_returnedLock)
            {
                return _returned;
            }
        }
    }

    /// <summary>
    /// <paramref name="length"/> bytes for one envelope, to be written through <paramref name="destination"/>
    /// before the memory is handed to anyone: a slice of the current slab, or an array of its own.
    /// </summary>
    public ReadOnlyMemory<byte> Rent(int length, out Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length <= LargestSlicedBytes)
        {
            // At most two tries: the current lease, then a new one if it was full.
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var lease = Volatile.Read(ref _current);
                if (lease is not null && lease.TryReserve(length, out var start))
                {
                    destination = lease.GetSpan().Slice(start, length);
                    return lease.Memory.Slice(start, length);
                }

                if (!TryReplaceCurrent(lease))
                {
                    break;
                }
            }
        }

        var own = new byte[length];
        destination = own;
        return own;
    }

    // The pool lets go of a full lease: it lives on only in the envelopes already sliced from it,
    // and its slab comes back once they are all unreachable. False when no slab is free.
    private bool TryReplaceCurrent(SlabLease? full)
    {
        lock (_returnedLock)
        {
            if (_current != full)
            {
                return true; // another thread replaced it meanwhile
            }

            var next = TryLeaseUnsynchronized();
            if (next is null)
            {
                return false;
            }

            Volatile.Write(ref _current, next);
            return true;
        }
    }

    private SlabLease? TryLeaseUnsynchronized()
    {
        byte[]? slab = null;
        if (_returnedSlabs.TryPeek(out var oldest) && GC.CollectionCount(0) > oldest.ReturnedAtCollection)
        {
            slab = _returnedSlabs.Dequeue().Slab;
        }

        if (slab is null)
        {
            if (_created == MaxSlabs)
            {
                return null;
            }

            _created++;
            slab = GC.AllocateUninitializedArray<byte>(SlabBytes, pinned: true);
        }

        _leased++;
        return new SlabLease(this, slab);
    }

    // Only from a lease's finalizer: no envelope of that lease is reachable any more. The slab is
    // leased again only after one more collection has completed: a reader that took a span of an
    // envelope and is still reading it when its last reference went (a span does not keep the
    // lease alive) would have to stay inside that one synchronous read across a whole collection
    // cycle. Readers in this library also hold the entry while they read its span (the invariant
    // in the class remarks); this is the margin behind it.
    private void Return(byte[] slab)
    {
        if (slab.Length != SlabBytes)
        {
            throw new InvariantViolationException($"Envelope slab pool: a slab of {slab.Length} bytes returned to a pool of {SlabBytes}-byte slabs.");
        }

        lock (_returnedLock)
        {
            _returned++;
            _returnedSlabs.Enqueue((slab, GC.CollectionCount(0)));
        }
    }

    /// <summary>
    /// One use of a slab: the owner of every envelope sliced from it during that use. Invariant:
    /// the reserved count only grows (<see cref="TryReserve"/> is one atomic add), so no two envelopes
    /// of a lease overlap, whichever threads reserved them.
    /// </summary>
    private sealed class SlabLease : MemoryManager<byte>
    {
        private byte[]? _slab;

        public SlabLease(EnvelopeSlabPool pool, byte[] slab)
        {
            Pool = pool;
            _slab = slab;
        }

        // Runs once the collector found no reference to this lease (no envelope of it is
        // reachable): only then may the slab be written again. CA2015 warns that a finalizer on a
        // MemoryManager can free memory a Span<T> still reads; here the memory is not freed but
        // pooled, and reused only under the rule stated at EnvelopeSlabPool.Return.
#pragma warning disable CA2015
        ~SlabLease()
#pragma warning restore CA2015
        {
            var slab = _slab;
            _slab = null;
            if (slab is not null)
            {
                Pool.Return(slab);
            }
        }

        // Bytes reserved so far. It passes the slab's length only by the reservations that found
        // room when they looked (at most one per thread racing at the end), each refused, so it
        // never wraps around into the slab again.
        private int _reserved;

        public EnvelopeSlabPool Pool { get; }

        /// <summary>Reserves <paramref name="length"/> bytes no other envelope of this lease has; false when the slab is full.</summary>
        public bool TryReserve(int length, out int start)
        {
            if (Volatile.Read(ref _reserved) + length > Pool.SlabBytes)
            {
                start = 0;
                return false;
            }

            var end = Interlocked.Add(ref _reserved, length);
            start = end - length;
            return end <= Pool.SlabBytes;
        }

        public override Span<byte> GetSpan() => _slab ?? throw new ObjectDisposedException(nameof(SlabLease));

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            var slab = _slab ?? throw new ObjectDisposedException(nameof(SlabLease));
            ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, slab.Length);

            // The slab is on the pinned-object heap: it never moves. The handle references this
            // lease, so a pinned envelope keeps its slab out of the pool until it is unpinned.
            return new MemoryHandle(Unsafe.AsPointer(ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(slab), elementIndex)), default, this);
        }

        public override void Unpin()
        {
        }

        // Never disposed by the library (it never hands the lease out); a disposal by anyone else
        // keeps the slab out of the pool for good (the base class suppresses the finalizer), which
        // loses nothing but the slab.
        protected override void Dispose(bool disposing)
        {
        }
    }
}
