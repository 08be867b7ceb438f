using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>BTreeOptions follows the options pattern: each setter names its option and range; Open checks the rule between options.</summary>
public class BTreeOptionsTests
{
    [Test]
    public void DefaultIsEveryDocumentedDefault()
    {
        var options = BTreeOptions.Default;
        Assert.That(options.PageSizeBytes, Is.EqualTo(BTreeOptions.DefaultPageSizeBytes).And.EqualTo(4096));
        Assert.That(options.MaxKeySizeBytes, Is.EqualTo(BTreeOptions.DefaultMaxKeySizeBytes).And.EqualTo(511));
        Assert.That(options.MaxValueSizeBytes, Is.EqualTo(BTreeOptions.DefaultMaxValueSizeBytes).And.EqualTo(64 * 1024 * 1024));
        Assert.That(options.PageCacheSizeBytes, Is.EqualTo(BTreeOptions.DefaultPageCacheSizeBytes).And.EqualTo(256L * 1024 * 1024));
        Assert.That(options.Logger, Is.Null);
        Assert.That(new BTreeOptions(), Is.EqualTo(options));
    }

    [TestCase(nameof(BTreeOptions.PageSizeBytes), 512)]
    [TestCase(nameof(BTreeOptions.PageSizeBytes), 3000)]
    [TestCase(nameof(BTreeOptions.PageSizeBytes), 131072)]
    [TestCase(nameof(BTreeOptions.MaxKeySizeBytes), 0)]
    [TestCase(nameof(BTreeOptions.MaxKeySizeBytes), 65536)]
    [TestCase(nameof(BTreeOptions.MaxValueSizeBytes), -1)]
    [TestCase(nameof(BTreeOptions.MaxValueSizeBytes), (1024 * 1024 * 1024) + 1)]
    [TestCase(nameof(BTreeOptions.PageCacheSizeBytes), (64 * 1024) - 1)]
    public void AnOutOfRangeValueIsRefusedNamingTheOption(string option, int value)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => _ = option switch
        {
            nameof(BTreeOptions.PageSizeBytes) => BTreeOptions.Default with { PageSizeBytes = value },
            nameof(BTreeOptions.MaxKeySizeBytes) => BTreeOptions.Default with { MaxKeySizeBytes = value },
            nameof(BTreeOptions.MaxValueSizeBytes) => BTreeOptions.Default with { MaxValueSizeBytes = value },
            _ => BTreeOptions.Default with { PageCacheSizeBytes = value },
        })!;
        Assert.That(error.ParamName, Is.EqualTo(option));
        Assert.That(error.Message, Does.Contain(option));
        Assert.That(error.ActualValue, Is.EqualTo(value).Or.EqualTo((long)value));
    }

    [Test]
    public void WithKeepsAnExplicitKeySizeAndTheDefaultFollowsThePageSize()
    {
        var explicitKeys = BTreeOptions.Default with { MaxKeySizeBytes = 100 };
        Assert.That((explicitKeys with { PageSizeBytes = 1024 }).MaxKeySizeBytes, Is.EqualTo(100));
        Assert.That((BTreeOptions.Default with { PageSizeBytes = 1024 }).MaxKeySizeBytes, Is.EqualTo(BTreeOptions.MaxKeySizeLimit(1024)));
    }

    [Test]
    public void OpenRefusesAKeySizeTooLargeForThePageSizeNamingBothOptions()
    {
        var options = new BTreeOptions { PageSizeBytes = 1024, MaxKeySizeBytes = 511 };
        var error = Assert.Throws<ArgumentException>(() => BTreeDatabase.Open(BTreeTestSupport.NewDisk(1), BTreeTestSupport.DatabasePath, options))!;
        Assert.That(error.ParamName, Is.EqualTo(nameof(BTreeOptions.MaxKeySizeBytes)));
        Assert.That(error.Message, Does.Contain(nameof(BTreeOptions.MaxKeySizeBytes)).And.Contain(nameof(BTreeOptions.PageSizeBytes)));
    }
}
