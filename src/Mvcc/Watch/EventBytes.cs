using System.Runtime.CompilerServices;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// Where an ordinary watch's consumer copies its live events' keys and values
/// (<see cref="WatchBuffer.TakeEvents"/>): consecutive events of one response share a slab array
/// instead of one array each, so a response of 256 small events allocates ~20 arrays, not 256
/// (an array costs 24 bytes of header besides its bytes, and one more object for the allocator).
/// </summary>
/// <remarks>
/// <para>Safety: a byte of a slab is written once, before the event that slices it is handed out,
/// and never again; a slab is never reused or returned anywhere, so an event a caller keeps forever
/// keeps its bytes (the events are immutable, as before).</para>
/// <para>Bound on what a kept event keeps alive: its slab, at most <see cref="MaxSlabBytes"/> (or its
/// own bytes when larger), shared only with events of the same response. Slabs grow from one event's
/// bytes, doubling the number of events they are sized for, so a response of one event allocates
/// exactly its bytes, and one of many wastes at most the tail of its last slab.
/// <see cref="Restart"/> at each response: a slab never spans responses, so an idle watch holds none.</para>
/// <para>Thread-safety: the consumer's alone.</para>
/// </remarks>
internal sealed class EventBytes
{
    /// <summary>A slab's size at most (it is sized for whole events: one larger event gets an array of its own size).</summary>
    internal const int MaxSlabBytes = 2048;

    /// <summary>Events the first slab of a response is sized for; doubled at each next slab.</summary>
    private const int FirstSlabEvents = 1;

    private byte[] _slab = [];
    private int _used;
    private int _slabEvents = FirstSlabEvents;

    /// <summary>A new response begins: the next copy starts a new slab (the last one is left to the events that slice it).</summary>
    public void Restart()
    {
        _slab = [];
        _used = 0;
        _slabEvents = FirstSlabEvents;
    }

    /// <summary>A copy of <paramref name="bytes"/>, in the current slab or a new one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Memory<byte> Copy(ReadOnlySpan<byte> bytes)
    {
        if (_slab.Length - _used < bytes.Length)
        {
            NewSlab(bytes.Length);
        }

        var copy = _slab.AsMemory(_used, bytes.Length);
        bytes.CopyTo(copy.Span);
        _used += bytes.Length;
        return copy;
    }

    /// <summary>A slab sized for <see cref="_slabEvents"/> events of <paramref name="length"/> bytes, within <see cref="MaxSlabBytes"/> (but never below <paramref name="length"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void NewSlab(int length)
    {
        long wanted = (long)length * _slabEvents;
        int size = (int)Math.Max(length, Math.Min(wanted, MaxSlabBytes));
        _slab = new byte[size];
        _used = 0;
        _slabEvents = Math.Min(_slabEvents * 2, MaxSlabBytes);
    }
}
