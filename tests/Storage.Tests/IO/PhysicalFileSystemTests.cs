using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Tests.IO;

/// <summary>The real disk behind the same interface: positional IO, preallocation, durability calls and the writer lock.</summary>
public sealed class PhysicalFileSystemTests
{
    private string _directory = null!;
    private readonly IFileSystem _fs = PhysicalFileSystem.Instance;

    [SetUp]
    public void CreateDirectory()
    {
        _directory = Path.Combine(Path.GetTempPath(), "embeddedraft-io-" + Guid.NewGuid().ToString("N"));
        _fs.CreateDirectory(_directory);
    }

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void GatherWritesLandBackToBackAndReadBackAtTheirOffsets()
    {
        string path = Path.Combine(_directory, "a");
        using (var file = _fs.Open(path, FileOpenMode.CreateNew))
        {
            file.Write(3, new ReadOnlyMemory<byte>[] { "abc"u8.ToArray(), "defg"u8.ToArray() });
            file.Flush();
        }

        _fs.SyncDirectory(_directory);
        using var reopened = _fs.Open(path, FileOpenMode.ReadOnly);
        var data = new byte[10];
        Assert.That(reopened.Read(0, data), Is.EqualTo(10));
        byte[] expected = [0, 0, 0, .. "abcdefg"u8];
        Assert.That(data, Is.EqualTo(expected));
        Assert.That(reopened.Read(10, data), Is.Zero, "reading at the end returns nothing");
    }

    [Test]
    public void StartingWriteBackChangesNoBytesAndAFlushStillSucceeds()
    {
        string path = Path.Combine(_directory, "a");
        var pages = Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)(i + 1), 4096).ToArray()).ToArray();
        using (var file = _fs.Open(path, FileOpenMode.CreateNew))
        {
            file.Write(4096, pages.Select(p => (ReadOnlyMemory<byte>)p).ToArray());
            file.StartWriteBack(4096, 3 * 4096);
            file.Write(0, pages[7]);
            file.StartWriteBack(0, 9 * 4096);
            file.StartWriteBack(1 << 20, 4096);
            file.Flush();
        }

        using var reopened = _fs.Open(path, FileOpenMode.ReadOnly);
        var data = new byte[9 * 4096];
        Assert.That(reopened.Read(0, data), Is.EqualTo(data.Length));
        byte[] expected = [.. pages[7], .. pages.SelectMany(p => p)];
        Assert.That(data, Is.EqualTo(expected));
    }

    [Test]
    public void NativeCallsOnADisposedFileAreRefusedNeverSentToAReusedDescriptor()
    {
        var file = _fs.Open(Path.Combine(_directory, "a"), FileOpenMode.CreateNew);
        file.Write(0, "x"u8);
        file.Dispose();
        // Another file may now hold the old descriptor number: a flush must not sync it instead.
        using var other = _fs.Open(Path.Combine(_directory, "b"), FileOpenMode.CreateNew);

        Assert.That(file.Flush, Throws.TypeOf<ObjectDisposedException>());
        Assert.That(() => file.Preallocate(4096), Throws.TypeOf<ObjectDisposedException>());
    }

    [Test]
    public void PreallocateExtendsWithZerosAndNeverShrinks()
    {
        using var file = _fs.Open(Path.Combine(_directory, "a"), FileOpenMode.CreateNew);
        file.Write(0, "x"u8);

        file.Preallocate(1 << 20);
        Assert.That(file.Length, Is.EqualTo(1 << 20));
        file.Preallocate(10);
        Assert.That(file.Length, Is.EqualTo(1 << 20));

        var tail = new byte[4096];
        file.Read((1 << 20) - 4096, tail);
        Assert.That(tail, Is.All.Zero);
        file.Flush();
    }

    [Test]
    public void ASecondWriterLockIsRefusedWithTheLockPathNamed()
    {
        string lockPath = Path.Combine(_directory, "LOCK");
        using (_fs.AcquireExclusiveLock(lockPath))
        {
            var refused = Assert.Throws<StorageLockedException>(() => _fs.AcquireExclusiveLock(lockPath));
            Assert.That(refused!.LockPath, Is.EqualTo(lockPath));
            Assert.That(refused.Message, Does.Contain(lockPath));
        }

        using (_fs.AcquireExclusiveLock(lockPath))
        {
            // Released and taken again.
        }
    }

    [Test]
    public void RenameReplacesTheDestinationAndListingIsSorted()
    {
        File.WriteAllText(Path.Combine(_directory, "b"), "old");
        File.WriteAllText(Path.Combine(_directory, "tmp"), "new");

        _fs.Rename(Path.Combine(_directory, "tmp"), Path.Combine(_directory, "b"));
        _fs.SyncDirectory(_directory);
        File.WriteAllText(Path.Combine(_directory, "a"), "");

        Assert.That(File.ReadAllText(Path.Combine(_directory, "b")), Is.EqualTo("new"));
        Assert.That(_fs.ListFiles(_directory), Is.EqualTo(new[] { "a", "b" }));
    }

    [Test]
    public void SyncingAMissingDirectoryNamesIt()
    {
        string missing = Path.Combine(_directory, "missing");
        var error = Assert.Throws<IOException>(() => _fs.SyncDirectory(missing));
        Assert.That(error!.Message, Does.Contain(missing));
    }
}
