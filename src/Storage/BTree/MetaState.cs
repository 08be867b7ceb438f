namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// An immutable committed state: what a meta page holds, plus counts kept for statistics.
/// <paramref name="FreelistWritten"/> is false for a NoSync commit, which writes no freelist run: its
/// <paramref name="FreelistPage"/> is then the run of the last synced commit (still in use, listing
/// that commit's free pages), and the writer's in-memory freelist is the only list of its own.
/// </summary>
internal sealed record MetaState(
    long Txid,
    long CatalogRoot,
    long BucketCount,
    long FreelistPage,
    int FreelistPageCount,
    long PageCount,
    long FreePageCount,
    bool FreelistWritten = true);
