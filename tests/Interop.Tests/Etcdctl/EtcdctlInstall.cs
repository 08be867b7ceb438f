using System.Diagnostics;

namespace EmbeddedRaft.Interop.Tests.Etcdctl;

/// <summary>
/// Finds Debian's etcd 3.4 binaries (etcdctl; etcd itself only for recording), installing the
/// package when one is missing (.ci/run installs them first; this covers a developer's machine).
/// A test is skipped, naming why, only when the binary is missing and apt cannot install it.
/// </summary>
internal static class EtcdctlInstall
{
    private static readonly Lazy<string?> s_etcdctl = new(() => Find("etcdctl", "etcd-client"));
    private static readonly Lazy<string?> s_etcd = new(() => Find("etcd", "etcd-server"));
    private static string s_whyMissing = string.Empty;

    /// <summary>etcdctl's path; ignores the calling test (Assert.Ignore) when it cannot be had.</summary>
    public static string Path => s_etcdctl.Value ?? Ignore("etcdctl");

    /// <summary>etcd's path (recording only); ignores the calling test when it cannot be had.</summary>
    public static string EtcdPath => s_etcd.Value ?? Ignore("etcd");

    private static string Ignore(string binary)
    {
        Assert.Ignore($"{binary} is not installed and could not be installed: {s_whyMissing}");
        return string.Empty;
    }

    private static string? Find(string binary, string package)
    {
        if (Which(binary) is { } path)
        {
            return path;
        }

        if (!OperatingSystem.IsLinux() || Which("apt-get") is null)
        {
            s_whyMissing = $"no apt-get on this machine to install Debian's {package}";
            return null;
        }

        (int rc, string output) = Run("apt-get", "install", "-y", "-qq", package);
        if (rc != 0)
        {
            // The package list may be missing or stale on a fresh machine.
            _ = Run("apt-get", "update", "-qq");
            (rc, output) = Run("apt-get", "install", "-y", "-qq", package);
        }

        if (Which(binary) is { } installed)
        {
            return installed;
        }

        s_whyMissing = $"'apt-get install -y {package}' exited {rc}: {output.Trim()}";
        return null;
    }

    private static string? Which(string binary) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(System.IO.Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => System.IO.Path.Combine(directory, binary))
            .FirstOrDefault(File.Exists);

    private static (int ExitCode, string Output) Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        try
        {
            using Process process = Process.Start(start)!;
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            process.WaitForExit();
            return (process.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
