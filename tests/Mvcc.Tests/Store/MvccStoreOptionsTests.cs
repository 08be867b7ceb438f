using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>Options check their own ranges, name themselves when wrong, bind from configuration, and the store checks the rule between them.</summary>
public sealed class MvccStoreOptionsTests
{
    [Test]
    public void DefaultsAreEtcds()
    {
        var options = MvccStoreOptions.Default;
        Assert.That((options.Durability, options.BatchLimit, options.BatchInterval, options.CompactionBatchLimit, options.MaxTxnOps, options.MaxRequestBytes),
            Is.EqualTo((MvccDurability.Synced, 10_000, TimeSpan.FromMilliseconds(100), 1_000, 128, 1536 * 1024)));
    }

    private static IEnumerable<TestCaseData> BadValues()
    {
        yield return new TestCaseData("BatchLimit", (Func<MvccStoreOptions>)(() => new MvccStoreOptions { BatchLimit = 0 }));
        yield return new TestCaseData("BatchInterval", (Func<MvccStoreOptions>)(() => new MvccStoreOptions { BatchInterval = TimeSpan.Zero }));
        yield return new TestCaseData("CompactionBatchLimit", (Func<MvccStoreOptions>)(() => new MvccStoreOptions { CompactionBatchLimit = -1 }));
        yield return new TestCaseData("MaxTxnOps", (Func<MvccStoreOptions>)(() => new MvccStoreOptions { MaxTxnOps = 0 }));
        yield return new TestCaseData("MaxRequestBytes", (Func<MvccStoreOptions>)(() => new MvccStoreOptions { MaxRequestBytes = 10 }));
        yield return new TestCaseData("Durability", (Func<MvccStoreOptions>)(() => new MvccStoreOptions { Durability = (MvccDurability)9 }));
    }

    [TestCaseSource(nameof(BadValues))]
    public void AnOutOfRangeValueIsRefusedNamingTheOption(string name, Func<MvccStoreOptions> create)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => create())!;
        Assert.That(error.ParamName, Is.EqualTo(name));
        Assert.That(error.Message, Does.Contain(name));
    }

    [Test]
    public void OpenRefusesABTreeThatCannotHoldTheLargestRequest()
    {
        var options = new MvccStoreOptions { MaxRequestBytes = 64 * 1024, BTree = new BTreeOptions { MaxValueSizeBytes = 32 * 1024 } };
        var error = Assert.Throws<ArgumentException>(() => MvccStore.Open(new FaultInjectingFileSystem(1), "/db", options))!;
        Assert.That(error.Message, Does.Contain("MaxRequestBytes").And.Contain("MaxValueSizeBytes"));
    }

    [Test]
    public void OptionsBindFromConfiguration()
    {
        var options = OptionsBinding.Bind<MvccStoreOptions>(new Dictionary<string, string?>
        {
            ["Durability"] = "NoSync",
            ["BatchLimit"] = "500",
            ["BatchInterval"] = "00:00:00.250",
            ["MaxTxnOps"] = "64",
        });
        Assert.That((options.Durability, options.BatchLimit, options.BatchInterval, options.MaxTxnOps), Is.EqualTo((MvccDurability.NoSync, 500, TimeSpan.FromMilliseconds(250), 64)));
        var error = Assert.Catch(() => OptionsBinding.Bind<MvccStoreOptions>(new Dictionary<string, string?> { ["BatchLimit"] = "0" }))!;
        Assert.That(OptionsBinding.Innermost(error), Is.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("BatchLimit"));
    }
}
