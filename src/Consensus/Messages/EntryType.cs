namespace EmbeddedRaft.Consensus.Messages;

/// <summary>What an <see cref="Entry"/>'s data means. Part of the wire format: only append.</summary>
public enum EntryType : byte
{
    /// <summary>An application command (or an empty entry appended by a new leader).</summary>
    Normal = 0,
    /// <summary>A configuration change (applied by the membership layer).</summary>
    ConfChange = 1,
}
