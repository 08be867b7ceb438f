using EmbeddedRaft.Storage.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Storage.Tests.Snapshots;

/// <summary>SnapshotOptions follows the options pattern: each setter names its option and range.</summary>
public class SnapshotOptionsTests
{
    [Test]
    public void DefaultIsEveryDocumentedDefault()
    {
        var options = SnapshotOptions.Default;
        Assert.That(options.RetainCount, Is.EqualTo(SnapshotOptions.DefaultRetainCount).And.EqualTo(5));
        Assert.That(options.ChunkSizeBytes, Is.EqualTo(SnapshotOptions.DefaultChunkSizeBytes).And.EqualTo(256 * 1024));
        Assert.That(options.MaxMembershipSizeBytes, Is.EqualTo(SnapshotOptions.DefaultMaxMembershipSizeBytes).And.EqualTo(16 * 1024 * 1024));
        Assert.That(options.Logger, Is.SameAs(NullLogger.Instance));
        Assert.That(new SnapshotOptions(), Is.EqualTo(options));
    }

    [TestCase(nameof(SnapshotOptions.RetainCount), 0)]
    [TestCase(nameof(SnapshotOptions.ChunkSizeBytes), 4095)]
    [TestCase(nameof(SnapshotOptions.ChunkSizeBytes), (16 * 1024 * 1024) + 1)]
    [TestCase(nameof(SnapshotOptions.MaxMembershipSizeBytes), -1)]
    public void AnOutOfRangeValueIsRefusedNamingTheOption(string option, int value)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = option switch
        {
            nameof(SnapshotOptions.RetainCount) => SnapshotOptions.Default with { RetainCount = value },
            nameof(SnapshotOptions.ChunkSizeBytes) => SnapshotOptions.Default with { ChunkSizeBytes = value },
            _ => SnapshotOptions.Default with { MaxMembershipSizeBytes = value },
        })!;
        Assert.That(error.ParamName, Is.EqualTo(option));
        Assert.That(error.Message, Does.Contain(option));
        Assert.That(error.ActualValue, Is.EqualTo(value));
    }

    [Test]
    public void TheRangeEndsAreAccepted()
    {
        var options = new SnapshotOptions { RetainCount = 1, ChunkSizeBytes = SnapshotOptions.MinChunkSizeBytes, MaxMembershipSizeBytes = 0 };
        Assert.That((options.RetainCount, options.ChunkSizeBytes, options.MaxMembershipSizeBytes), Is.EqualTo((1, 4096, 0)));
        Assert.That((options with { ChunkSizeBytes = SnapshotOptions.MaxChunkSizeBytes }).ChunkSizeBytes, Is.EqualTo(16 * 1024 * 1024));
    }

    [Test]
    public void ANullLoggerMeansNowhere() =>
        Assert.That(new SnapshotOptions { Logger = null! }.Logger, Is.SameAs(NullLogger.Instance));
}
