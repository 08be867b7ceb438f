namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// A received frame's copy lent to an <see cref="IReceivedFrameBorrower"/> with the messages decoded
/// from it: the entries' <see cref="Messages.Entry.Data"/> of those messages slice <paramref name="Buffer"/>.
/// </summary>
/// <param name="Buffer">The array the frame was copied into, rented from the borrower's <see cref="ReceivedFramePool"/>.</param>
/// <param name="HighestEntryIndex">The highest index of an entry the frame carried (at least 1): once the borrower no longer holds any entry up to it, nothing reads the array.</param>
internal readonly record struct LentFrame(byte[] Buffer, ulong HighestEntryIndex);
