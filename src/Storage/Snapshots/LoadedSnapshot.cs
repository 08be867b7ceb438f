namespace EmbeddedRaft.Storage.Snapshots;

/// <summary>
/// A snapshot found valid by <see cref="Snapshotter.LoadNewestAsync"/>: its metadata and a stream of its
/// data. The stream checks every chunk again as it is read and throws
/// <see cref="CorruptionException"/> if the file changed since it was checked. Dispose it to close the file.
/// Not thread-safe.
/// </summary>
public sealed class LoadedSnapshot : IDisposable, IAsyncDisposable
{
    private readonly SnapshotReadStream _data;

    internal LoadedSnapshot(SnapshotReadStream data, long dataLengthBytes)
    {
        _data = data;
        DataLengthBytes = dataLengthBytes;
    }

    /// <summary>What the snapshot covers.</summary>
    public SnapshotFileMetadata Metadata => _data.Metadata;

    /// <summary>The snapshot file.</summary>
    public string Path => _data.Path;

    /// <summary>The length of the data in bytes.</summary>
    public long DataLengthBytes { get; }

    /// <summary>The data, read-only and forward-only; memory use is one chunk whatever the size.</summary>
    public Stream Data => _data;

    /// <summary>Closes the file.</summary>
    public void Dispose() => _data.Dispose();

    /// <summary>Closes the file.</summary>
    public ValueTask DisposeAsync() => _data.DisposeAsync();
}
