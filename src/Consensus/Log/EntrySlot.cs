using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Consensus.Log;

/// <summary>
/// What <see cref="EntryTable"/> keeps of every entry, cached or not: enough to answer
/// <see cref="IRaftStorage.Term"/> and size limits without the data, and where to read the entry back.
/// </summary>
internal struct EntrySlot
{
    /// <summary>A position no record has: the entry's append has not returned yet.</summary>
    public static readonly WalPosition Unknown = new(-1, 0);

    public ulong Term;

    /// <summary>Where the entry's record starts in the write-ahead log, or <see cref="Unknown"/>.</summary>
    public WalPosition Position;

    /// <summary>The entry's <see cref="Entry.EncodedSizeBytes"/>.</summary>
    public int SizeBytes;

    public EntryType Type;
}
