namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// Arrays for received frames' copies, reused once their borrower (a receiver that implements
/// <see cref="IReceivedFrameBorrower"/>) returns them, so that a follower's appends stop allocating
/// one large-object array per frame (session 19, t14o: ~2,000 B per proposal, the gen2 collections of a
/// TCP cluster). One per borrower; rented on transport threads, returned on the borrower's loop.
/// </summary>
/// <remarks>
/// <para>
/// Sizes: powers of two from <see cref="SmallestClassBytes"/> to <see cref="LargestClassBytes"/>; a
/// rented array is at least the frame's length, the frame its prefix. A frame shorter than
/// <see cref="SmallestPooledFrameBytes"/> (a heartbeat, an acknowledgement, a trickle of appends) or
/// longer than the largest class is not pooled: <see cref="Rent"/> says no and the caller makes an
/// array of the frame's own size, as it would without a pool (a 32 KiB array per 100-byte frame
/// would multiply what a chatty or hostile peer costs; the fuzz test's heap bound caught it).
/// </para>
/// <para>
/// Bounded: at most <see cref="MaxIdleBytes"/> of arrays wait here; one returned past that is left to
/// the collector. An empty class rents a new array. What is lent out is bounded by the borrower (see
/// RaftNode's <c>ReceivedFrameLedger</c>), never by making a renter wait.
/// </para>
/// <para>
/// Poisoning: with <see cref="PoisonReturnedFrames"/> (tests set it for their whole process) every
/// returned array is filled with <see cref="PoisonByte"/> at once, so a holder that reads a frame's
/// bytes after they were given back reads garbage that its checks (the RaftNode proposal envelope,
/// a test's recorded commands) refuse loudly, rather than a later frame's plausible bytes.
/// </para>
/// <para>Thread-safety: every member may be called from any thread.</para>
/// </remarks>
internal sealed class ReceivedFramePool
{
    /// <summary>The smallest pooled array: a batch frame closes at about 32 KiB.</summary>
    public const int SmallestClassBytes = 32 * 1024;

    /// <summary>The shortest frame given a pooled array: half the smallest class, so an array is never more than twice its frame.</summary>
    public const int SmallestPooledFrameBytes = SmallestClassBytes / 2;

    /// <summary>The largest pooled array: an append carries at most 1 MiB of entries by default, plus its headers.</summary>
    public const int LargestClassBytes = 2 * 1024 * 1024;

    /// <summary>The most bytes of arrays kept waiting for a renter.</summary>
    public const long MaxIdleBytes = 32L * 1024 * 1024;

    /// <summary>What a returned array is filled with when <see cref="PoisonReturnedFrames"/> is set.</summary>
    public const byte PoisonByte = 0xDB;

    private static readonly int s_classCount = System.Numerics.BitOperations.Log2(LargestClassBytes / SmallestClassBytes) + 1;

    private readonly Lock _lock = new();
    private readonly Stack<byte[]>[] _idle;
    private long _idleBytes; // Guarded by _lock. Invariant: the sum of the lengths of the arrays in _idle.
    private long _reused;
    private long _rented;

    public ReceivedFramePool()
    {
        _idle = new Stack<byte[]>[s_classCount];
        for (var i = 0; i < _idle.Length; i++)
        {
            _idle[i] = new Stack<byte[]>();
        }
    }

    /// <summary>Set by test processes: returned arrays are poisoned (see the remarks).</summary>
    public static bool PoisonReturnedFrames { get; set; }

    /// <summary>Arrays rented that came from the pool rather than new; for tests and benchmarks.</summary>
    public long Reused => Volatile.Read(ref _reused);

    /// <summary>Arrays rented in all (new or reused); for tests and benchmarks.</summary>
    public long Rented => Volatile.Read(ref _rented);

    /// <summary>
    /// An array of at least <paramref name="lengthBytes"/> bytes (uninitialized) for one frame's copy,
    /// or null for a frame this pool does not take (shorter than <see cref="SmallestPooledFrameBytes"/>
    /// or longer than <see cref="LargestClassBytes"/>).
    /// </summary>
    public byte[]? Rent(int lengthBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(lengthBytes);
        if (lengthBytes < SmallestPooledFrameBytes || lengthBytes > LargestClassBytes)
        {
            return null;
        }

        var cls = ClassOf(lengthBytes);
        Interlocked.Increment(ref _rented);
        lock (_lock)
        {
            if (_idle[cls].TryPop(out var array))
            {
                _idleBytes -= array.Length;
                _reused++;
                return array;
            }
        }

        return GC.AllocateUninitializedArray<byte>(SmallestClassBytes << cls);
    }

    /// <summary>
    /// Gives <paramref name="array"/> back: the caller guarantees that nothing reads or writes it any
    /// more. An array not of a class size (not rented here) is dropped.
    /// </summary>
    public void Return(byte[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.Length < SmallestClassBytes || array.Length > LargestClassBytes || !System.Numerics.BitOperations.IsPow2(array.Length))
        {
            return;
        }

        if (PoisonReturnedFrames)
        {
            array.AsSpan().Fill(PoisonByte);
        }

        lock (_lock)
        {
            if (_idleBytes + array.Length > MaxIdleBytes)
            {
                return;
            }

            _idle[ClassOf(array.Length)].Push(array);
            _idleBytes += array.Length;
        }
    }

    /// <summary>The class whose arrays hold <paramref name="lengthBytes"/>: the smallest power of two at least that, from <see cref="SmallestClassBytes"/>.</summary>
    private static int ClassOf(int lengthBytes) =>
        lengthBytes <= SmallestClassBytes ? 0 : System.Numerics.BitOperations.Log2((uint)(lengthBytes - 1)) + 1 - System.Numerics.BitOperations.Log2(SmallestClassBytes);
}
