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
/// A frame longer than <see cref="FieldChunkBytes"/> (<see cref="BeginLargeFrame"/>) is not copied
/// whole: a copy that size would be a large-object array (85,000 B or more) per frame, and on a
/// follower at high load (RaftNode's appends of 99–149 KB, one per frame) those arrays were what
/// filled the large-object heap's budget and brought gen2 collections that the in-process network
/// does not have. Instead each byte field is copied on its own into shared chunks of
/// <see cref="FieldChunkBytes"/> (small-object arrays) that are only ever appended to: a slice,
/// once handed out, is never written again, so the same immutability holds. A held message of a
/// large frame keeps its chunks alive (at most <see cref="FieldChunkBytes"/> each); a field longer
/// than a chunk gets an array of its own.
/// </para>
/// <para>Not thread-safe: one per connection's reading task. Call <see cref="BeginFrame()"/> (or an overload, or <see cref="BeginLargeFrame"/>) before each frame.</para>
/// </remarks>
internal sealed class FrameDecodeContext
{
    /// <summary>Entries per shared block: small enough that a held message pins little, large enough to amortize the allocation.</summary>
    public const int EntryBlockLength = 128;

    /// <summary>Bytes per shared field chunk of a large frame: under the large-object heap's 85,000 B threshold.</summary>
    public const int FieldChunkBytes = 64 * 1024;

    private byte[]? _frameCopy;
    private bool _copyFields;
    private byte[]? _fieldChunk;
    private int _fieldChunkUsed;
    private Entry[]? _entries;
    private int _entriesUsed;

    /// <summary>Frame copies made (one per frame that had any byte field); for tests.</summary>
    public long FrameCopies { get; private set; }

    /// <summary>Field chunks allocated for large frames (and fields longer than a chunk); for tests.</summary>
    public long FieldChunks { get; private set; }

    /// <summary>True when the current frame's byte fields are copied one by one (<see cref="CopyField"/>), not as one copy of the frame.</summary>
    public bool CopiesFields => _copyFields;

    /// <summary>Starts a new frame: the next byte field copies the new frame.</summary>
    public void BeginFrame()
    {
        _frameCopy = null;
        _copyFields = false;
    }

    /// <summary>
    /// Starts a new frame longer than <see cref="FieldChunkBytes"/> whose bytes the caller may reuse
    /// as soon as it is decoded: each byte field is copied into the shared field chunks
    /// (<see cref="CopyField"/>), so nothing decoded aliases the frame's bytes.
    /// </summary>
    public void BeginLargeFrame()
    {
        _frameCopy = null;
        _copyFields = true;
    }

    /// <summary>A copy of <paramref name="field"/> in the field chunks (or in an array of its own when longer than a chunk); the copy's bytes are never written again.</summary>
    public ReadOnlyMemory<byte> CopyField(ReadOnlySpan<byte> field)
    {
        if (!_copyFields)
        {
            throw new InvariantViolationException("CopyField outside a large frame: BeginLargeFrame was not called.");
        }

        if (field.Length > FieldChunkBytes)
        {
            FieldChunks++;
            return field.ToArray();
        }

        if (_fieldChunk is null || _fieldChunk.Length - _fieldChunkUsed < field.Length)
        {
            _fieldChunk = GC.AllocateUninitializedArray<byte>(FieldChunkBytes);
            _fieldChunkUsed = 0;
            FieldChunks++;
        }

        field.CopyTo(_fieldChunk.AsSpan(_fieldChunkUsed));
        var copy = new ReadOnlyMemory<byte>(_fieldChunk, _fieldChunkUsed, field.Length);
        _fieldChunkUsed += field.Length;
        return copy;
    }

    /// <summary>
    /// Starts a new frame the caller already copied into <paramref name="ownedCopy"/> (a frame split
    /// across pipe segments): messages alias that array, so the caller gives it up for good.
    /// </summary>
    public void BeginFrame(byte[] ownedCopy)
    {
        _frameCopy = ownedCopy;
        _copyFields = false;
        FrameCopies++;
    }

    /// <summary>The current frame's copy, made from <paramref name="frame"/> on first use.</summary>
    public byte[] FrameCopy(ReadOnlySpan<byte> frame)
    {
        if (_copyFields)
        {
            throw new InvariantViolationException("A whole-frame copy asked for inside a large frame, whose fields are copied one by one.");
        }

        if (_frameCopy is null)
        {
            _frameCopy = GC.AllocateUninitializedArray<byte>(frame.Length);
            frame.CopyTo(_frameCopy);
            FrameCopies++;
        }
        else if (_frameCopy.Length != frame.Length)
        {
            throw new InvariantViolationException($"A frame copy of {_frameCopy.Length} bytes reused for a frame of {frame.Length} bytes: BeginFrame was not called.");
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
