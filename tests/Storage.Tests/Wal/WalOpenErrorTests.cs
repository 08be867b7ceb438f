using System.Buffers.Binary;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>Open refuses what it cannot use with an error that says what and where.</summary>
public sealed class WalOpenErrorTests
{
    [Test]
    public void APlainFileWhereTheDirectoryShouldBeIsNamedAsNotADirectory()
    {
        var fs = new FaultInjectingFileSystem(70);
        fs.CreateDirectory("/data");
        using (var file = fs.Open(WalTestKit.Directory, FileOpenMode.CreateNew))
        {
            file.Write(0, [1, 2, 3]);
        }

        var error = Assert.Throws<IOException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()));
        Assert.That(error!.Message, Does.Contain(WalTestKit.Directory).And.Contain("not a directory"));
    }

    [Test]
    public void APlainFileIsNamedAsNotADirectoryOnTheRealDiskToo()
    {
        string path = Path.Combine(Path.GetTempPath(), "embeddedraft-wal-file-" + Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(path, [1, 2, 3]);
        try
        {
            var error = Assert.Throws<IOException>(() => WriteAheadLog.Open(PhysicalFileSystem.Instance, path, WalTestKit.SmallSegments()));
            Assert.That(error!.Message, Does.Contain(path).And.Contain("not a directory"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void ALogInFormatVersionOneIsRefusedAsUnsupportedNotCorrupt()
    {
        // A segment header exactly as version 1 wrote it: crc at bytes 16-19 over bytes 0-15 and
        // the payload, bytes 20-23 zero, version 1 in the payload.
        var fs = new FaultInjectingFileSystem(71);
        fs.CreateDirectory(WalTestKit.Directory);
        var frame = new byte[WalFormat.SegmentHeaderFrameSizeBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(frame, WalFormat.EncodeLengthWord(WalFormat.SegmentHeaderPayloadSizeBytes, WalFormat.SegmentHeaderType));
        "ERWALSEG"u8.CopyTo(frame.AsSpan(24));
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(32), 1);
        uint crc = Crc32C.Append(Crc32C.Append(0, frame.AsSpan(0, 16)), frame.AsSpan(24));
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(16), crc);
        string path = Path.Combine(WalTestKit.Directory, WalFormat.SegmentFileName(0, 0));
        using (var file = fs.Open(path, FileOpenMode.CreateNew))
        {
            file.Write(0, frame);
            file.Preallocate(4096);
            file.Flush();
        }

        var error = Assert.Throws<NotSupportedException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, WalTestKit.SmallSegments()));
        Assert.That(error!.Message, Does.Contain(path).And.Contain("format version 1"));
    }
}
