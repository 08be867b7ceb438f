namespace EmbeddedRaft.Storage.BTree;

/// <summary>An immutable committed state: what a meta page holds, plus counts kept for statistics.</summary>
internal sealed record MetaState(
    long Txid,
    long CatalogRoot,
    long BucketCount,
    long FreelistPage,
    int FreelistPageCount,
    long PageCount,
    long FreePageCount);
