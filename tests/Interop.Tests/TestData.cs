namespace EmbeddedRaft.Interop.Tests;

/// <summary>Where this project's testdata lives in the source tree (REWRITE=1 writes there).</summary>
internal static class TestData
{
    public static string Directory { get; } = Find();

    public static string EtcdctlDirectory => Path.Combine(Directory, "etcdctl");

    private static string Find()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "EmbeddedRaft.sln")))
            {
                return Path.Combine(directory.FullName, "tests", "Interop.Tests", "testdata");
            }
        }

        throw new DirectoryNotFoundException($"No EmbeddedRaft.sln above {AppContext.BaseDirectory}: cannot find tests/Interop.Tests/testdata.");
    }
}
