namespace EmbeddedRaft.Storage.IO;

/// <summary>How <see cref="IFileSystem.Open"/> treats an existing or missing file. Every mode opens for reading and writing.</summary>
public enum FileOpenMode
{
    /// <summary>Open an existing file; fail when it is missing.</summary>
    OpenExisting,

    /// <summary>Create a new, empty file; fail when it already exists.</summary>
    CreateNew,

    /// <summary>Open the file when it exists, create it empty otherwise.</summary>
    OpenOrCreate,

    /// <summary>Open an existing file for reading only; fail when it is missing.</summary>
    ReadOnly,
}
