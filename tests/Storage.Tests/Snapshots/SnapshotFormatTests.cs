using System.Buffers.Binary;
using EmbeddedRaft.Storage.IO;
using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>Pins the layout documented in docs/formats.md, "Snapshot files".</summary>
public sealed class SnapshotFormatTests
{
    [Test]
    public void NamesAreTermThenIndexInFixedWidthHex()
    {
        Assert.That(SnapshotFormat.FileName(0x2, 0x1f), Is.EqualTo("0000000000000002-000000000000001f.snap"));
        Assert.That(SnapshotFormat.TryParseFileName("0000000000000002-000000000000001f.snap", out ulong term, out ulong index), Is.True);
        Assert.That((term, index), Is.EqualTo((2UL, 0x1FUL)));
        Assert.That(SnapshotFormat.TryParseFileName("0000000000000002-000000000000001f.snap.broken", out _, out _), Is.False);
        Assert.That(SnapshotFormat.TryParseFileName("0000000000000002-000000000000001f.snap.tmp", out _, out _), Is.False);
    }

    [Test]
    public async Task AFileIsHeaderThenChunksThenTrailer()
    {
        var fs = new FaultInjectingFileSystem(1);
        using var snapshotter = new Snapshotter(fs, SnapshotTestKit.Directory, new SnapshotOptions { ChunkSizeBytes = 4096 });
        var data = SnapshotTestKit.Data(new Random(1), 5000);
        string path = await snapshotter.SaveAsync(new SnapshotFileMetadata(7, 3, [1, 2, 3]), new MemoryStream(data));

        using var file = fs.Open(path, FileOpenMode.ReadOnly);
        var bytes = new byte[file.Length];
        file.Read(0, bytes);
        Assert.That(bytes.Length, Is.EqualTo(32 + 3 + 4 + (8 + 4096) + (8 + 904) + 32));
        Assert.That(System.Text.Encoding.ASCII.GetString(bytes, 0, 8), Is.EqualTo("ERSNAPSH"));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)), Is.EqualTo(1u));
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12)), Is.EqualTo(3));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(16)), Is.EqualTo(7UL));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(24)), Is.EqualTo(3UL));
        Assert.That(bytes.AsSpan(32, 3).ToArray(), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(39)), Is.EqualTo(4096));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(43)), Is.EqualTo(Storage.Crc32C.Append(0, data.AsSpan(0, 4096))));
        int trailer = bytes.Length - 32;
        Assert.That(BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(trailer)), Is.Zero);
        Assert.That(BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(trailer + 8)), Is.EqualTo(5000L));
        Assert.That(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(trailer + 16)), Is.EqualTo(Storage.Crc32C.Append(0, data)));
        Assert.That(System.Text.Encoding.ASCII.GetString(bytes, trailer + 24, 8), Is.EqualTo("ERSNAPEN"));
    }
}
