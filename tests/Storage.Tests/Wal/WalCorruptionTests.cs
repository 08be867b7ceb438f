using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>Damage that a torn write cannot explain is refused, naming the file and offset; nothing is skipped.</summary>
public sealed class WalCorruptionTests
{
    private static readonly WalOptions s_options = WalTestKit.SmallSegments();

    [Test]
    public async Task AFlippedBitInAnOlderSegmentFailsTheReaderAtThatRecord()
    {
        var (fs, records) = await WriteLogAsync(40);
        var victim = records.First(r => r.Position.Sequence == 2);
        string path = SegmentPath(fs, 2);
        fs.FlipBit(path, victim.Position.Offset + 24 + 5, 3);

        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        var error = Assert.Throws<CorruptionException>(() => WalTestKit.ReadAll(log));
        Assert.That(error!.Path, Is.EqualTo(path));
        Assert.That(error.Offset, Is.EqualTo(victim.Position.Offset));
    }

    [Test]
    public async Task AFlippedBitBeforeTheLastRecordOfTheLastSegmentIsRefusedAtOpen()
    {
        var (fs, records) = await WriteLogAsync(41);
        long last = records[^1].Position.Sequence;
        var victim = records.First(r => r.Position.Sequence == last);
        Assume.That(victim, Is.Not.EqualTo(records[^1]), "the last segment holds more than one record");
        string path = SegmentPath(fs, last);
        fs.FlipBit(path, victim.Position.Offset + 30, 0);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, s_options));
        Assert.That(error!.Path, Is.EqualTo(path));
        Assert.That(error.Offset, Is.EqualTo(victim.Position.Offset));
        Assert.That(fs.AllFiles().Any(f => f.EndsWith(".torn", StringComparison.Ordinal)), Is.False, "nothing is repaired");
    }

    [Test]
    public async Task AFlippedBitInALengthWordIsRefused()
    {
        var (fs, records) = await WriteLogAsync(42);
        var victim = records[3];
        fs.FlipBit(SegmentPath(fs, victim.Position.Sequence), victim.Position.Offset + 1, 6);

        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        var error = Assert.Throws<CorruptionException>(() => WalTestKit.ReadAll(log));
        Assert.That(error!.Offset, Is.EqualTo(victim.Position.Offset));
        Assert.That(error.Reason, Does.Contain("length word"));
    }

    [Test]
    public async Task ADamagedSegmentHeaderIsRefusedAtOpen()
    {
        var (fs, _) = await WriteLogAsync(43);
        string path = SegmentPath(fs, 1);
        fs.FlipBit(path, 40, 1);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, s_options));
        Assert.That(error!.Path, Is.EqualTo(path));
        Assert.That(error.Offset, Is.EqualTo(0));
    }

    [Test]
    public async Task AMissingSegmentIsRefusedAtOpen()
    {
        var (fs, _) = await WriteLogAsync(44);
        fs.DeleteFile(SegmentPath(fs, 2));
        fs.SyncDirectory(WalTestKit.Directory);

        var error = Assert.Throws<CorruptionException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, s_options));
        Assert.That(error!.Path, Is.EqualTo(SegmentPath(fs, 3)));
    }

    [Test]
    public async Task AnOlderSegmentThatLostItsLastRecordsBreaksTheChainAtItsEnd()
    {
        var (fs, records) = await WriteLogAsync(45);
        var lastOfSegmentOne = records.Last(r => r.Position.Sequence == 1);
        string path = SegmentPath(fs, 1);
        WalTornTailTests.OverwriteDurably(fs, path, lastOfSegmentOne.Position.Offset, new byte[WalFormat.FrameSize(lastOfSegmentOne.Payload.Length)]);

        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        var error = Assert.Throws<CorruptionException>(() => WalTestKit.ReadAll(log));
        Assert.That(error!.Path, Is.EqualTo(path));
        Assert.That(error.Offset, Is.EqualTo(lastOfSegmentOne.Position.Offset));
        Assert.That(error.Reason, Does.Contain("crc chain"));
    }

    private static async Task<(FaultInjectingFileSystem Fs, List<StoredRecord> Records)> WriteLogAsync(int seed)
    {
        var fs = new FaultInjectingFileSystem(seed);
        var random = new Random(seed);
        var records = new List<StoredRecord>();
        await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
        for (ulong i = 1; i <= 60; i++)
        {
            var payload = WalTestKit.Payload(random, 100, 900);
            records.Add(new StoredRecord(1, i, payload, await log.AppendAsync(1, payload, i)));
        }

        return (fs, records);
    }

    private static string SegmentPath(FaultInjectingFileSystem fs, long sequence) =>
        fs.AllFiles().Single(f => Path.GetFileName(f).StartsWith(sequence.ToString("x16", System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) && f.EndsWith(".wal", StringComparison.Ordinal));
}
