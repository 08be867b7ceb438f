namespace EmbeddedRaft.Consensus.Core;

/// <summary>The outcome of looking up an entry's term.</summary>
internal enum TermLookup
{
    Found,
    /// <summary>The index is below the first available entry (folded into a snapshot).</summary>
    Compacted,
    /// <summary>The index is beyond the last entry.</summary>
    Unavailable,
}
