namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// What <see cref="BTreeDatabase.Open"/> found and did: which meta page it used, whether the other
/// one was damaged (so the open may have fallen back to an older commit), and whether it rebuilt a
/// damaged freelist. Every fallback the open takes silently is recorded here
/// (<see cref="BTreeDatabase.OpenReport"/>) and logged as a warning through
/// <see cref="BTreeOptions.Logger"/>.
/// </summary>
public sealed record BTreeOpenReport
{
    /// <summary>True when this open created the file.</summary>
    public required bool Created { get; init; }

    /// <summary>The meta page (0 or 1) whose commit was opened (before any repair commit the open made).</summary>
    public required int MetaSlot { get; init; }

    /// <summary>The id of the commit that was opened.</summary>
    public required long Txid { get; init; }

    /// <summary>
    /// The meta page (0 or 1) that failed verification, or null when both were valid. The damaged page
    /// may have described a newer commit than <see cref="Txid"/> (a meta write torn by a crash, which
    /// loses only a commit that never returned; or later damage to the newest commit, which loses that
    /// commit): a meta page that cannot be read cannot say which, so treat this as "the open may have
    /// fallen back one commit".
    /// </summary>
    public int? DamagedMetaSlot { get; init; }

    /// <summary>Byte offset of <see cref="DamagedMetaSlot"/>'s page in the file, or null.</summary>
    public long? DamagedMetaOffsetBytes { get; init; }

    /// <summary>Why <see cref="DamagedMetaSlot"/> was rejected (for example "checksum mismatch"), or null.</summary>
    public string? DamagedMetaReason { get; init; }

    /// <summary>
    /// True when the freelist run of the opened commit was damaged and the open rebuilt it: every page
    /// not reachable from the opened commit's trees (and not a meta page or the damaged run) is free.
    /// The rebuilt freelist is written and made durable during the open by a commit that changes
    /// nothing else (id <see cref="Txid"/> + 1), so <see cref="BTreeDatabase.Check"/> passes afterwards.
    /// </summary>
    public bool FreelistRebuilt { get; init; }

    /// <summary>Why the freelist was rebuilt (the reason of the <see cref="CorruptionException"/> that named the damage, for example "page 1234: checksum mismatch"), or null.</summary>
    public string? FreelistDamage { get; init; }

    /// <summary>True when the open took a fallback: a damaged meta page or a rebuilt freelist.</summary>
    public bool FoundDamage => DamagedMetaSlot is not null || FreelistRebuilt;
}
