namespace EmbeddedRaft.Storage;

/// <summary>
/// Thrown when a directory or file that needs a single writer (a write-ahead log, a B+tree file)
/// is already held by another writer, in this process or another.
/// </summary>
public sealed class StorageLockedException : IOException
{
    /// <summary>Creates the exception for the lock at <paramref name="lockPath"/>.</summary>
    public StorageLockedException(string lockPath, Exception? inner = null)
        : base($"'{lockPath}' is locked by another writer (another process, or another open instance in this one). Close it first, or use a different directory.", inner)
    {
        LockPath = lockPath;
    }

    /// <summary>The lock file that could not be taken.</summary>
    public string LockPath { get; }
}
