using EmbeddedRaft.Storage.Wal;

namespace EmbeddedRaft.Storage.Tests.Wal;

public sealed class WalOptionsTests
{
    [Test]
    public void DefaultsAre64MiBSegmentsAnd16MiBRecords()
    {
        var options = new WalOptions();
        Assert.That(options.SegmentSizeBytes, Is.EqualTo(64L * 1024 * 1024));
        Assert.That(options.MaxRecordSizeBytes, Is.EqualTo(16 * 1024 * 1024));
        Assert.That(options.MaxBufferedBytes, Is.EqualTo(4L * options.WriteBufferSizeBytes));
    }

    [Test]
    public void MaxRecordSizeShrinksToFitSmallSegmentsWhenNotGiven()
    {
        var options = new WalOptions(segmentSizeBytes: 4096);
        // Segment header, the record's frame header, and room for a sync mark (32) and the trailer (16).
        Assert.That(options.MaxRecordSizeBytes, Is.EqualTo(4096 - 64 - 24 - 48));
    }

    [TestCase(1024L)]
    [TestCase(4097L)]
    [TestCase(WalOptions.MaxSegmentSizeBytes + 512)]
    public void SegmentSizesThatAreTooSmallOrUnalignedAreRefused(long size) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new WalOptions(segmentSizeBytes: size));

    [Test]
    public void RecordsThatCannotFitInASegmentAreRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new WalOptions(segmentSizeBytes: 4096, maxRecordSizeBytes: 4096));

    [Test]
    public void BufferedBytesBelowOneBufferAreRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new WalOptions(writeBufferSizeBytes: 8192, maxBufferedBytes: 4096));
}
