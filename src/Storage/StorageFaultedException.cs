namespace EmbeddedRaft.Storage;

/// <summary>
/// Thrown by a store (the write-ahead log, the B+tree) that earlier failed a write or a flush and
/// has stopped taking changes: after a failed flush nobody can know which of the writes since the
/// last good one reached the disk (Linux may even drop the dirty pages and report the error once
/// only), so going on could acknowledge data that is not durable. The store stays faulted until it
/// is disposed and opened again; opening recovers exactly what is durable. <see cref="Exception.InnerException"/>
/// is the first failure.
/// </summary>
public sealed class StorageFaultedException : IOException
{
    /// <summary>Creates the exception for the store at <paramref name="path"/>, faulted by <paramref name="failure"/>.</summary>
    public StorageFaultedException(string path, Exception failure)
        : base($"'{path}' stopped taking changes after a failed write or flush ({failure?.Message}); changes after its last durable point may be lost. Dispose it and open it again.", failure)
    {
        ArgumentNullException.ThrowIfNull(failure);
        Path = path;
    }

    /// <summary>The store's file or directory.</summary>
    public string Path { get; }
}
