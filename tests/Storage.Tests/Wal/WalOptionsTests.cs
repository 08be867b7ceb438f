using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Storage.Tests.Wal;

public sealed class WalOptionsTests
{
    [Test]
    public void DefaultsAre64MiBSegmentsAnd16MiBRecords()
    {
        var options = new WalOptions();
        Assert.That(options.SegmentSizeBytes, Is.EqualTo(64L * 1024 * 1024));
        Assert.That(options.MaxRecordSizeBytes, Is.EqualTo(16 * 1024 * 1024));
        Assert.That(options.WriteBufferSizeBytes, Is.EqualTo(WalOptions.DefaultWriteBufferSizeBytes));
        Assert.That(options.MaxBufferedBytes, Is.EqualTo(4L * options.WriteBufferSizeBytes));
        Assert.That(options.Logger, Is.SameAs(NullLogger.Instance));
        Assert.That(WalOptions.Default, Is.EqualTo(options));
    }

    [Test]
    public void MaxRecordSizeShrinksToFitSmallSegmentsWhenNotGiven()
    {
        var options = WalOptions.Default with { SegmentSizeBytes = 4096 };
        // Segment header, the record's frame header, and room for a sync mark (32) and the trailer (16).
        Assert.That(options.MaxRecordSizeBytes, Is.EqualTo(4096 - 64 - 24 - 48));
    }

    [Test]
    public void UnsetMaxBufferedBytesFollowsTheBufferSize()
    {
        var options = WalOptions.Default with { WriteBufferSizeBytes = 8192 };
        Assert.That(options.MaxBufferedBytes, Is.EqualTo(4 * 8192));
    }

    [TestCase(1024L)]
    [TestCase(4097L)]
    [TestCase(WalOptions.MaxSegmentSizeBytes + 512)]
    public void SegmentSizesThatAreTooSmallOrUnalignedAreRefusedNamingTheOption(long size)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new WalOptions { SegmentSizeBytes = size });
        Assert.That(error!.ParamName, Is.EqualTo(nameof(WalOptions.SegmentSizeBytes)));
        Assert.That(error.Message, Does.Contain("SegmentSizeBytes").And.Contain("4096"));
    }

    [Test]
    public void EachPropertyRefusesItsOwnOutOfRangeValueNamingItself()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new WalOptions { MaxRecordSizeBytes = 0 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("MaxRecordSizeBytes"));
            Assert.That(() => new WalOptions { WriteBufferSizeBytes = 4095 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("WriteBufferSizeBytes"));
            Assert.That(() => new WalOptions { MaxBufferedBytes = 100 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("MaxBufferedBytes"));
            Assert.That(() => new WalOptions { Logger = null! }, Throws.TypeOf<ArgumentNullException>().With.Property("ParamName").EqualTo("Logger"));
        });
    }

    [Test]
    public void RecordsThatCannotFitInASegmentAreRefusedByOpenNamingBothOptions()
    {
        var fs = new FaultInjectingFileSystem(seed: 1);
        var options = new WalOptions { SegmentSizeBytes = 4096, MaxRecordSizeBytes = 4096 };
        var error = Assert.Throws<ArgumentException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, options).Dispose());
        Assert.That(error!.Message, Does.Contain("MaxRecordSizeBytes").And.Contain("SegmentSizeBytes"));
        Assert.That(fs.DirectoryExists(WalTestKit.Directory), Is.False, "Options are checked before anything is created.");
    }

    [Test]
    public void BufferedBytesBelowOneBufferAreRefusedByOpenNamingBothOptions()
    {
        var fs = new FaultInjectingFileSystem(seed: 1);
        var options = new WalOptions { WriteBufferSizeBytes = 8192, MaxBufferedBytes = 4096 };
        var error = Assert.Throws<ArgumentException>(() => WriteAheadLog.Open(fs, WalTestKit.Directory, options).Dispose());
        Assert.That(error!.Message, Does.Contain("MaxBufferedBytes").And.Contain("WriteBufferSizeBytes"));
    }
}
