namespace EmbeddedRaft.TestSupport.IO;

/// <summary>The kinds of operation the fault-injecting file system counts and can fail or crash after.</summary>
public enum FaultOperationKind
{
    Create,
    Write,
    Flush,
    SetLength,
    Preallocate,
    Rename,
    Delete,
    SyncDirectory,
}

/// <summary>One mutating operation, as shown to <see cref="FaultInjectingFileSystem.FailWhen"/>.</summary>
/// <param name="Kind">What the operation is.</param>
/// <param name="Path">The file (or directory, for <see cref="FaultOperationKind.SyncDirectory"/>) it acts on.</param>
/// <param name="Offset">The byte offset of a write, or the new length; 0 otherwise.</param>
/// <param name="Length">The byte count of a write; 0 otherwise.</param>
/// <param name="Sequence">The 1-based number of this operation since the file system was created or restarted.</param>
public readonly record struct FaultOperation(FaultOperationKind Kind, string Path, long Offset, long Length, long Sequence);
