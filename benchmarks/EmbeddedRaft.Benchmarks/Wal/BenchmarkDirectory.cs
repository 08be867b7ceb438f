using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Wal;

/// <summary>A fresh directory on the real disk (under the temp path, which must not be tmpfs: check with <c>df</c>).</summary>
internal static class BenchmarkDirectory
{
    public static string Create(string name)
    {
        string path = Path.Combine(Path.GetTempPath(), $"embeddedraft-bench-{name}-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>
    /// The raw-disk baseline's file: created in <paramref name="directory"/>, preallocated to
    /// <paramref name="lengthBytes"/> and flushed, so raw writes land in allocated space as a WAL
    /// segment's do.
    /// </summary>
    public static IStorageFile CreateRawFile(string directory, long lengthBytes)
    {
        var file = PhysicalFileSystem.Instance.Open(Path.Combine(directory, "raw.bin"), FileOpenMode.CreateNew);
        file.Preallocate(lengthBytes);
        file.Flush();
        return file;
    }

    public static void Delete(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }
}
