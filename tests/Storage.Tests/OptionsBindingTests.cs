using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Storage.Tests;

/// <summary>
/// Every options type of the storage layer binds from configuration as a hosted service binds it
/// (<c>configuration.GetSection("Wal").Get&lt;WalOptions&gt;()</c>), keeps its defaults for what the
/// section leaves out, and refuses an out-of-range value naming the option.
/// </summary>
public class OptionsBindingTests
{
    [Test]
    public void WalOptionsBind()
    {
        var options = OptionsBinding.Bind<WalOptions>(new Dictionary<string, string?>
        {
            ["SegmentSizeBytes"] = "8388608",
            ["WriteBufferSizeBytes"] = "65536",
        });

        var expected = new WalOptions { SegmentSizeBytes = 8 * 1024 * 1024, WriteBufferSizeBytes = 64 * 1024 };
        Assert.That(
            (options.SegmentSizeBytes, options.WriteBufferSizeBytes, options.MaxRecordSizeBytes, options.MaxBufferedBytes),
            Is.EqualTo((expected.SegmentSizeBytes, expected.WriteBufferSizeBytes, expected.MaxRecordSizeBytes, expected.MaxBufferedBytes)));
    }

    [Test]
    public void BTreeOptionsBind()
    {
        var options = OptionsBinding.Bind<BTreeOptions>(new Dictionary<string, string?>
        {
            ["PageSizeBytes"] = "8192",
            ["PageCacheSizeBytes"] = "1048576",
        });

        var expected = new BTreeOptions { PageSizeBytes = 8192, PageCacheSizeBytes = 1024 * 1024 };
        Assert.That(
            (options.PageSizeBytes, options.PageCacheSizeBytes, options.MaxKeySizeBytes, options.MaxValueSizeBytes),
            Is.EqualTo((expected.PageSizeBytes, expected.PageCacheSizeBytes, expected.MaxKeySizeBytes, expected.MaxValueSizeBytes)));
    }

    [Test]
    public void SnapshotOptionsBind()
    {
        var options = OptionsBinding.Bind<SnapshotOptions>(new Dictionary<string, string?> { ["RetainCount"] = "2" });

        Assert.That(
            (options.RetainCount, options.ChunkSizeBytes, options.MaxMembershipSizeBytes),
            Is.EqualTo((2, SnapshotOptions.Default.ChunkSizeBytes, SnapshotOptions.Default.MaxMembershipSizeBytes)));
    }

    [TestCase(typeof(WalOptions), "SegmentSizeBytes", "12")]
    [TestCase(typeof(BTreeOptions), "PageSizeBytes", "1000")]
    [TestCase(typeof(SnapshotOptions), "RetainCount", "0")]
    public void AnOutOfRangeValueFailsNamingTheOption(Type optionsType, string option, string value)
    {
        var bind = typeof(OptionsBinding).GetMethod(nameof(OptionsBinding.Bind))!.MakeGenericMethod(optionsType);
        var values = new Dictionary<string, string?> { [option] = value };

        var error = Assert.Catch(() => bind.Invoke(null, [values]));

        var cause = OptionsBinding.Innermost(error!);
        Assert.That(cause, Is.InstanceOf<ArgumentException>(), cause.ToString());
        Assert.That(((ArgumentException)cause).ParamName, Is.EqualTo(option));
    }
}
