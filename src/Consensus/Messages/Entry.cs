using System.Numerics;

namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// One log entry. A small immutable value: the core stores entries in arrays of this struct,
/// so appending and replicating allocates nothing per entry.
/// </summary>
/// <remarks>
/// <see cref="Data"/> is not copied by the core: whoever creates an entry must not mutate the
/// bytes afterwards.
/// </remarks>
public readonly struct Entry : IEquatable<Entry>
{
    /// <summary>Creates an entry.</summary>
    public Entry(ulong term, ulong index, EntryType type, ReadOnlyMemory<byte> data)
    {
        Term = term;
        Index = index;
        Type = type;
        Data = data;
    }

    /// <summary>Creates a normal entry with no term or index yet (a proposal).</summary>
    internal Entry(ReadOnlyMemory<byte> data)
        : this(0, 0, EntryType.Normal, data)
    {
    }

    /// <summary>The term of the leader that created the entry.</summary>
    public ulong Term { get; }

    /// <summary>The entry's position in the log (1-based).</summary>
    public ulong Index { get; }

    /// <summary>How <see cref="Data"/> is interpreted.</summary>
    public EntryType Type { get; }

    /// <summary>The opaque command.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>
    /// The entry's size as encoded by <see cref="MessageCodec"/>; used for every byte limit
    /// except the uncommitted-bytes quota, which counts <see cref="Data"/> only.
    /// </summary>
    public int EncodedSizeBytes =>
        1 + VarintSize(Term) + VarintSize(Index) + VarintSize((ulong)Data.Length) + Data.Length;

    /// <summary>Returns a copy with the given term and index.</summary>
    internal Entry WithPosition(ulong term, ulong index) => new(term, index, Type, Data);

    internal static int VarintSize(ulong value) => ((63 - BitOperations.LeadingZeroCount(value | 1)) / 7) + 1;

    /// <inheritdoc/>
    public bool Equals(Entry other) =>
        Term == other.Term && Index == other.Index && Type == other.Type && Data.Span.SequenceEqual(other.Data.Span);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Entry other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Term, Index, Type, Data.Length);

    /// <summary>Value equality, comparing data bytes.</summary>
    public static bool operator ==(Entry left, Entry right) => left.Equals(right);

    /// <summary>Value inequality.</summary>
    public static bool operator !=(Entry left, Entry right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => $"{Term}/{Index} {Type} ({Data.Length} bytes)";
}
