using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// What the messages decoded from one connection share, so that decoding a frame of many messages
/// costs one copy of the frame and a few entry arrays rather than an array and a copy per message
/// (see <see cref="MessageCodec.DecodeMessage(ReadOnlySpan{byte}, int, int, FrameDecodeContext)"/>).
/// </summary>
/// <remarks>
/// <para>
/// Lifetime rules: the frame copy is a new array per frame (never pooled, never written after the
/// copy), and entry blocks are handed out once each, so a decoded message is immutable and may be
/// held forever, past any later frame. The price of sharing: a held message keeps its whole frame's
/// copy alive (a batch frame is about 32 KiB; one message larger than that travels alone) and its
/// entry block (<see cref="EntryBlockLength"/> entries).
/// </para>
/// <para>
/// With a <see cref="Pool"/> (the receiver borrows frames: <see cref="IReceivedFrameBorrower"/>)
/// the frame copy of a frame the pool takes is rented instead, at least the frame's length, and the rules above hold only until
/// the borrower returns it: the connection then hands <see cref="PooledFrameCopy"/> to the borrower
/// or leaves it to the collector.
/// </para>
/// <para>Not thread-safe: one per connection's reading task. Call <see cref="BeginFrame()"/> (or its overload) before each frame.</para>
/// </remarks>
internal sealed class FrameDecodeContext
{
    /// <summary>Entries per shared block: small enough that a held message pins little, large enough to amortize the allocation.</summary>
    public const int EntryBlockLength = 128;

    private byte[]? _frameCopy;
    private int _frameLength; // Invariant: with _frameCopy set, the frame is its first _frameLength bytes.
    private bool _frameCopyPooled;
    private Entry[]? _entries;
    private int _entriesUsed;

    /// <summary>Frame copies made (one per frame that had any byte field); for tests.</summary>
    public long FrameCopies { get; private set; }

    /// <summary>Where frame copies are rented from, or null for a new array of the frame's size each (today's contract).</summary>
    public ReceivedFramePool? Pool { get; set; }

    /// <summary>The current frame's copy if it was rented from <see cref="Pool"/>, else null (no copy, or a new array).</summary>
    public byte[]? PooledFrameCopy => _frameCopyPooled ? _frameCopy : null;

    /// <summary>Starts a new frame: the next byte field copies the new frame.</summary>
    public void BeginFrame()
    {
        _frameCopy = null;
        _frameCopyPooled = false;
    }

    /// <summary>
    /// Starts a new frame the caller already copied into the first <paramref name="length"/> bytes of
    /// <paramref name="ownedCopy"/> (a frame split across pipe segments): messages alias that array,
    /// so the caller gives it up. <paramref name="pooled"/>: the array was rented from <see cref="Pool"/>.
    /// </summary>
    public void BeginFrame(byte[] ownedCopy, int length, bool pooled)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, ownedCopy.Length);
        _frameCopy = ownedCopy;
        _frameLength = length;
        _frameCopyPooled = pooled;
        FrameCopies++;
    }

    /// <summary>The current frame's copy, made from <paramref name="frame"/> on first use.</summary>
    public byte[] FrameCopy(ReadOnlySpan<byte> frame)
    {
        if (_frameCopy is null)
        {
            var rented = Pool?.Rent(frame.Length);
            _frameCopy = rented ?? GC.AllocateUninitializedArray<byte>(frame.Length);
            _frameLength = frame.Length;
            _frameCopyPooled = rented is not null;
            frame.CopyTo(_frameCopy);
            FrameCopies++;
        }
        else if (_frameLength != frame.Length)
        {
            throw new InvariantViolationException($"A frame copy of {_frameLength} bytes reused for a frame of {frame.Length} bytes: BeginFrame was not called.");
        }

        return _frameCopy;
    }

    /// <summary>A slice of <paramref name="count"/> fresh entry slots, never handed out before.</summary>
    public Memory<Entry> TakeEntries(int count)
    {
        if (count > EntryBlockLength)
        {
            return new Entry[count];
        }

        if (_entries is null || _entries.Length - _entriesUsed < count)
        {
            _entries = new Entry[EntryBlockLength];
            _entriesUsed = 0;
        }

        var slice = _entries.AsMemory(_entriesUsed, count);
        _entriesUsed += count;
        return slice;
    }
}
