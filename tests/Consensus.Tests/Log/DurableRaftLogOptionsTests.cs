using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Storage.Snapshots;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>DurableRaftLogOptions checks each value as it is set, naming the option, and binds from configuration.</summary>
public sealed class DurableRaftLogOptionsTests
{
    [Test]
    public void OutOfRangeValuesAreRefusedNamingTheOption()
    {
        var negativeCache = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new DurableRaftLogOptions { CachedEntryBytes = -1 });
        Assert.That(negativeCache!.ParamName, Is.EqualTo(nameof(DurableRaftLogOptions.CachedEntryBytes)));
        Assert.That(negativeCache.Message, Does.Contain("CachedEntryBytes must be at least 0"));

        var negativeThreshold = Assert.Throws<ArgumentOutOfRangeException>(() => _ = DurableRaftLogOptions.Default with { SlowFsyncThreshold = TimeSpan.FromMilliseconds(-1) });
        Assert.That(negativeThreshold!.ParamName, Is.EqualTo(nameof(DurableRaftLogOptions.SlowFsyncThreshold)));

        Assert.That(() => new DurableRaftLogOptions { Wal = null! }, Throws.ArgumentNullException.With.Property("ParamName").EqualTo("Wal"));
        Assert.That(() => new DurableRaftLogOptions { Snapshots = null! }, Throws.ArgumentNullException.With.Property("ParamName").EqualTo("Snapshots"));
        Assert.That(() => new DurableRaftLogOptions { Logger = null! }, Throws.ArgumentNullException.With.Property("ParamName").EqualTo("Logger"));
        Assert.That(() => new DurableRaftLogOptions { TimeProvider = null! }, Throws.ArgumentNullException.With.Property("ParamName").EqualTo("TimeProvider"));
    }

    [Test]
    public void TheOptionsBindFromConfigurationWithTheNestedLogAndSnapshotOptions()
    {
        var options = OptionsBinding.Bind<DurableRaftLogOptions>(new Dictionary<string, string?>
        {
            ["CachedEntryBytes"] = "1048576",
            ["RetainedEntries"] = "100",
            ["SlowFsyncThreshold"] = "00:00:00.250",
            ["MetricsNodeId"] = "7",
            ["Wal:SegmentSizeBytes"] = "8388608",
            ["Snapshots:RetainCount"] = "2",
        });

        Assert.That(
            (options.CachedEntryBytes, options.RetainedEntries, options.SlowFsyncThreshold, options.MetricsNodeId, options.Wal.SegmentSizeBytes, options.Snapshots.RetainCount),
            Is.EqualTo((1048576L, 100UL, TimeSpan.FromMilliseconds(250), 7UL, 8388608L, 2)));
    }

    [Test]
    public void ABadBoundValueFailsNamingTheOption()
    {
        var thrown = Assert.Catch(() => OptionsBinding.Bind<DurableRaftLogOptions>(new Dictionary<string, string?> { ["CachedEntryBytes"] = "-5" }));
        Assert.That(OptionsBinding.Innermost(thrown!), Is.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("CachedEntryBytes"));
    }

    [Test]
    public void BindingNestedOptionsLeavesTheSharedDefaultsAlone()
    {
        // The binder binds a nested section into the property's current value through its init
        // setters: were that value the shared WalOptions.Default, binding would change it for everyone.
        _ = OptionsBinding.Bind<DurableRaftLogOptions>(new Dictionary<string, string?>
        {
            ["Wal:SegmentSizeBytes"] = "4194304",
            ["Snapshots:RetainCount"] = "3",
        });

        Assert.That(WalOptions.Default, Is.EqualTo(new WalOptions()));
        Assert.That(SnapshotOptions.Default, Is.EqualTo(new SnapshotOptions()));
    }
}
