namespace EmbeddedRaft.Storage.IO;

/// <summary>
/// A file whose flush can be submitted to a <see cref="UringFlusher"/> instead of run on the
/// calling thread: the real disk's file, and wrappers that pass it through. The write-ahead log
/// asks for it; a file without it (the simulator's, a test's) is flushed synchronously, as always.
/// </summary>
internal interface IRingFlushableFile
{
    /// <summary>
    /// Submits the file's <see cref="IStorageFile.Flush"/> (<c>fdatasync</c>) to <paramref name="ring"/>;
    /// <paramref name="done"/> runs once, on the ring's reaper thread, with null or the failure
    /// (an <see cref="IOException"/>: the written data must be treated as lost, never retried). False
    /// (and <paramref name="done"/> never called) when nothing was submitted: flush synchronously.
    /// </summary>
    bool TrySubmitFlush(UringFlusher ring, Action<Exception?> done);
}
