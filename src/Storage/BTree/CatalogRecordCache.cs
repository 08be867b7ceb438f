namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// The bucket a read transaction last found in the catalog, and the commit (its <see cref="MetaState"/>)
/// whose catalog it was found in: a later read transaction of the same commit opens that bucket
/// without searching the catalog. An MVCC store begins one read transaction per read and opens one
/// bucket in each, so most reads between two commits skip the search and its allocations.
/// </summary>
/// <remarks>
/// Immutable and swapped whole, so a reader sees either the old entry or the new one. Correct
/// because a commit's catalog never changes once the commit is published: the entry is used only
/// by a transaction whose snapshot is that very <see cref="MetaState"/> instance.
/// </remarks>
internal sealed record CatalogRecordCache(MetaState Snapshot, string Name, long RootPageId, long Count);
