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

    public static void Delete(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }
}
