namespace EmbeddedRaft.Consensus.Tracking;

/// <summary>
/// The flow-control window of one follower: the append messages sent but not yet acknowledged,
/// as a ring buffer of (last index, bytes). Full when either the message count or the byte
/// total reaches its limit; acknowledgements free every message up to an index.
/// </summary>
internal sealed class Inflights
{
    private readonly int _capacity;
    private readonly ulong _maxBytes;
    private (ulong Index, ulong Bytes)[] _buffer;
    private int _start;

    public Inflights(int capacity, ulong maxBytes)
    {
        _capacity = capacity;
        _maxBytes = maxBytes;
        _buffer = [];
    }

    /// <summary>Number of messages in flight.</summary>
    public int Count { get; private set; }

    /// <summary>Total payload bytes in flight.</summary>
    public ulong Bytes { get; private set; }

    /// <summary>Full: no more messages may be sent until some are acknowledged. A byte limit of 0 means none.</summary>
    public bool Full => Count == _capacity || (_maxBytes != 0 && Bytes >= _maxBytes);

    /// <summary>Records a message whose last entry is <paramref name="index"/>. Indexes must be added in increasing order.</summary>
    public void Add(ulong index, ulong bytes)
    {
        if (Full)
        {
            throw new InvariantViolationException("Inflights.Add called on a full window.");
        }

        if (Count > 0 && index <= _buffer[(_start + Count - 1) % _buffer.Length].Index)
        {
            throw new InvariantViolationException($"Inflights.Add index {index} is not above the last in flight.");
        }

        if (Count == _buffer.Length)
        {
            Grow();
        }

        _buffer[(_start + Count) % _buffer.Length] = (index, bytes);
        Count++;
        Bytes += bytes;
    }

    /// <summary>Frees every message whose last index is &lt;= <paramref name="index"/>.</summary>
    public void FreeLE(ulong index)
    {
        while (Count > 0 && _buffer[_start].Index <= index)
        {
            Bytes -= _buffer[_start].Bytes;
            _start = (_start + 1) % _buffer.Length;
            Count--;
        }

        if (Count == 0)
        {
            _start = 0;
        }
    }

    public void Reset()
    {
        Count = 0;
        Bytes = 0;
        _start = 0;
    }

    private void Grow()
    {
        // Grow lazily up to the capacity so idle followers cost nothing.
        var size = Math.Min(_capacity, Math.Max(4, _buffer.Length * 2));
        var next = new (ulong, ulong)[size];
        for (var i = 0; i < Count; i++)
        {
            next[i] = _buffer[(_start + i) % _buffer.Length];
        }

        _buffer = next;
        _start = 0;
    }
}
