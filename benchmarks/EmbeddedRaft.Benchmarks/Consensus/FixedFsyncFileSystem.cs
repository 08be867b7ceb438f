using EmbeddedRaft.Benchmarks.IO;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// The real file system with every flush replaced by a sleep of a fixed time (no fdatasync): a disk
/// whose fsync always takes <c>flushTime</c>, whatever it carries and whoever else uses the disk.
/// For <c>cluster-load --fsync-ms</c>: what the write pipeline's structure (how many fsyncs a
/// proposal waits for, how large the groups are) does to throughput, without the shared disk's
/// noise. Nothing it writes is durable: a diagnostic, never a figure of the library against a disk.
/// </summary>
internal sealed class FixedFsyncFileSystem(TimeSpan flushTime) : ForwardingFileSystem(PhysicalFileSystem.Instance)
{
    public override IStorageFile Open(string path, FileOpenMode mode) => new File(Inner.Open(path, mode), flushTime);

    public override void SyncDirectory(string directory) => Thread.Sleep(flushTime);

    // Everything else is forwarded, so the WAL recycles a released segment here as on the real disk.
    private sealed class File(IStorageFile inner, TimeSpan flushTime) : ForwardingStorageFile(inner)
    {
        public override void Flush() => Thread.Sleep(flushTime);
    }
}
