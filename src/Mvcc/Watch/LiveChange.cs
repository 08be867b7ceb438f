using EmbeddedRaft.Mvcc.Index;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// One change as a synced watcher's buffer holds it: the revision's stored bytes (the B+tree value,
/// <see cref="Store.StoredValue"/>) at <see cref="Offset"/> in <see cref="Chunk"/>, which the writer
/// copied there once for every watcher of the change. The consumer turns it into a
/// <see cref="WatchEvent"/> on its own thread, so the writer builds no object per event.
/// </summary>
/// <remarks>
/// Invariant: the bytes are never written again once the change is buffered (a chunk is append-only
/// and never reused), so a consumer may read them without the hub's lock.
/// </remarks>
internal readonly record struct LiveChange(byte[] Chunk, int Offset, int Length, Revision Revision, bool Tombstone)
{
    public ReadOnlySpan<byte> Stored => Chunk.AsSpan(Offset, Length);
}
