namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// Where a record starts: the sequence number of its segment file and the byte offset of its
/// frame inside that file. Positions order records in log order.
/// </summary>
/// <param name="Sequence">The segment's sequence number (the first half of its file name).</param>
/// <param name="Offset">The byte offset of the record's frame in the segment file; a multiple of 8.</param>
public readonly record struct WalPosition(long Sequence, long Offset) : IComparable<WalPosition>
{
    /// <inheritdoc />
    public int CompareTo(WalPosition other)
    {
        int bySequence = Sequence.CompareTo(other.Sequence);
        return bySequence != 0 ? bySequence : Offset.CompareTo(other.Offset);
    }

    /// <summary>True when <paramref name="left"/> comes before <paramref name="right"/> in the log.</summary>
    public static bool operator <(WalPosition left, WalPosition right) => left.CompareTo(right) < 0;

    /// <summary>True when <paramref name="left"/> comes after <paramref name="right"/> in the log.</summary>
    public static bool operator >(WalPosition left, WalPosition right) => left.CompareTo(right) > 0;

    /// <summary>True when <paramref name="left"/> is not after <paramref name="right"/>.</summary>
    public static bool operator <=(WalPosition left, WalPosition right) => left.CompareTo(right) <= 0;

    /// <summary>True when <paramref name="left"/> is not before <paramref name="right"/>.</summary>
    public static bool operator >=(WalPosition left, WalPosition right) => left.CompareTo(right) >= 0;

    /// <inheritdoc />
    public override string ToString() => $"{Sequence:x16}@{Offset}";
}
