using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>RaftNodeOptions follows the options pattern: binds from configuration, each value checked by its setter, rules between them by StartAsync.</summary>
[TestFixture]
public sealed class RaftNodeOptionsTests
{
    [Test]
    public void OptionsBindFromConfiguration()
    {
        var options = OptionsBinding.Bind<RaftNodeOptions>(new Dictionary<string, string?>
        {
            ["NodeId"] = "3",
            ["DataDirectory"] = "/data/raft",
            ["TickInterval"] = "00:00:00.050",
            ["SnapshotEveryEntries"] = "500",
            ["ProposalTimeout"] = "00:00:02",
            ["Raft:Id"] = "3",
            ["Raft:PreVote"] = "true",
            ["InitialVoters:0"] = "1",
            ["InitialVoters:1"] = "2",
            ["InitialVoters:2"] = "3",
        });

        Assert.That(options.NodeId, Is.EqualTo(3));
        Assert.That(options.DataDirectory, Is.EqualTo("/data/raft"));
        Assert.That(options.TickInterval, Is.EqualTo(TimeSpan.FromMilliseconds(50)));
        Assert.That(options.SnapshotEveryEntries, Is.EqualTo(500));
        Assert.That(options.ProposalTimeout, Is.EqualTo(TimeSpan.FromSeconds(2)));
        Assert.That(options.Raft.PreVote, Is.True);
        Assert.That(options.InitialVoters, Is.EqualTo(new ulong[] { 1, 2, 3 }));
    }

    [TestCase(nameof(RaftNodeOptions.TickInterval), "00:00:00")]
    [TestCase(nameof(RaftNodeOptions.ProposalTimeout), "-00:00:01")]
    [TestCase(nameof(RaftNodeOptions.DeduplicationWindow), "0")]
    [TestCase(nameof(RaftNodeOptions.SnapshotEveryLogBytes), "-1")]
    public void AnOutOfRangeValueFailsNamingTheOption(string name, string value)
    {
        var error = Assert.Catch(() => OptionsBinding.Bind<RaftNodeOptions>(new Dictionary<string, string?> { [name] = value }));

        var cause = OptionsBinding.Innermost(error!);
        Assert.That(cause, Is.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(((ArgumentOutOfRangeException)cause).ParamName, Is.EqualTo(name));
        Assert.That(cause.Message, Does.Contain(name));
    }

    [Test]
    public void StartChecksTheRulesBetweenOptions()
    {
        var valid = new RaftNodeOptions { NodeId = 1, DataDirectory = "/n1" };

        Assert.That(() => (valid with { Raft = new RaftOptions(2) }).Validate(), Throws.ArgumentException.With.Message.Contains("NodeId"));
        Assert.That(() => (valid with { Raft = new RaftOptions { AppliedIndex = 5 } }).Validate(), Throws.ArgumentException.With.Message.Contains("AppliedIndex"));
        Assert.That(() => (valid with { ProposalTimeout = TimeSpan.FromMilliseconds(50) }).Validate(), Throws.ArgumentException.With.Message.Contains("TickInterval"));
        Assert.That(() => new RaftNodeOptions { NodeId = 1 }.Validate(), Throws.ArgumentException.With.Message.Contains("DataDirectory"));
        Assert.That(() => new RaftNodeOptions { DataDirectory = "/n1" }.Validate(), Throws.ArgumentException.With.Message.Contains("NodeId"));
        Assert.That(() => valid.Validate(), Throws.Nothing);
    }
}
