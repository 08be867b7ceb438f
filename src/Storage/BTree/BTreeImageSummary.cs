namespace EmbeddedRaft.Storage.BTree;

/// <summary>What a restored B+tree image held (see <see cref="BTreeDatabase.RestoreImageAsync"/>).</summary>
/// <param name="BucketCount">Buckets restored.</param>
/// <param name="EntryCount">Entries restored, over all buckets.</param>
/// <param name="SourceTransactionId">The id of the transaction the image was written from (<see cref="Transaction.Id"/> in the source database).</param>
/// <param name="SizeBytes">The image's length in bytes.</param>
public sealed record BTreeImageSummary(long BucketCount, long EntryCount, long SourceTransactionId, long SizeBytes);
