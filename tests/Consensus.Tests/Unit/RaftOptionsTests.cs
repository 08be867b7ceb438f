using EmbeddedRaft.Consensus.Tests.Support;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Unit;

public class RaftOptionsTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    [Test]
    public void OptionsBindFromConfigurationAsAHostedServiceBindsThem()
    {
        var options = OptionsBinding.Bind<RaftOptions>(new Dictionary<string, string?>
        {
            ["Id"] = "7",
            ["ElectionTimeoutTicks"] = "20",
            ["HeartbeatTimeoutTicks"] = "2",
            ["PreVote"] = "true",
            ["CheckQuorum"] = "true",
            ["ReadOnlyMode"] = "LeaseBased",
            ["LeaseDriftMarginTicks"] = "3",
            ["RandomSeed"] = "99",
        });

        Assert.That(options, Is.EqualTo(new RaftOptions(7)
        {
            ElectionTimeoutTicks = 20,
            HeartbeatTimeoutTicks = 2,
            PreVote = true,
            CheckQuorum = true,
            ReadOnlyMode = ReadOnlyMode.LeaseBased,
            LeaseDriftMarginTicks = 3,
            RandomSeed = 99,
        }));
    }

    [Test]
    public void ABoundValueOutOfRangeFailsNamingTheOption()
    {
        var error = Assert.Catch(() => OptionsBinding.Bind<RaftOptions>(new Dictionary<string, string?> { ["Id"] = "1", ["ElectionTimeoutTicks"] = "0" }));
        var cause = OptionsBinding.Innermost(error!);
        Assert.That(cause, Is.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(((ArgumentOutOfRangeException)cause).ParamName, Is.EqualTo(nameof(RaftOptions.ElectionTimeoutTicks)));
    }

    [Test]
    public void NodeIdZeroIsRefused() =>
        Assert.That(() => new RaftOptions(0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Id"));

    [Test]
    public void OutOfRangeValuesNameTheOption()
    {
        Assert.That(() => new RaftOptions(1) { ElectionTimeoutTicks = 0 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ElectionTimeoutTicks"));
        Assert.That(() => new RaftOptions(1) { HeartbeatTimeoutTicks = 0 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("HeartbeatTimeoutTicks"));
        Assert.That(() => new RaftOptions(1) { MaxInflightMessages = 0 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("MaxInflightMessages"));
        Assert.That(() => new RaftOptions(1) { ReadOnlyMode = (ReadOnlyMode)9 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ReadOnlyMode"));
    }

    [Test]
    public void HeartbeatMustBeShorterThanTheElectionTimeout() =>
        Assert.That(
            () => new RawNode(new RaftOptions(1) { ElectionTimeoutTicks = 5, HeartbeatTimeoutTicks = 5 }, MemoryStorage.WithVoters(1)),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("HeartbeatTimeoutTicks"));

    [Test]
    public void LeaseBasedReadsRequireCheckQuorum() =>
        Assert.That(
            () => new RawNode(new RaftOptions(1) { ReadOnlyMode = ReadOnlyMode.LeaseBased }, MemoryStorage.WithVoters(1)),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("ReadOnlyMode").And.Message.Contains("CheckQuorum"));

    [Test]
    public void AppliedIndexBeyondTheCommitIndexIsRefused() =>
        Assert.That(
            () => new RawNode(new RaftOptions(1) { AppliedIndex = 5 }, MemoryStorage.WithVoters(1)),
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("AppliedIndex"));

    [Test]
    public void TheLeaseDriftMarginMustBeNonNegativeAndBelowTheElectionTimeout()
    {
        Assert.That(() => new RaftOptions(1) { LeaseDriftMarginTicks = -1 }, Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("LeaseDriftMarginTicks"));
        Assert.That(
            () => new RawNode(new RaftOptions(1) { ElectionTimeoutTicks = 5, LeaseDriftMarginTicks = 5 }, MemoryStorage.WithVoters(1)),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("LeaseDriftMarginTicks"));
        Assert.That(new RaftOptions(1) { ElectionTimeoutTicks = 10 }.EffectiveLeaseDriftMarginTicks, Is.EqualTo(2), "unset: a fifth of the election timeout");
        Assert.That(new RaftOptions(1) { LeaseDriftMarginTicks = 0 }.EffectiveLeaseDriftMarginTicks, Is.EqualTo(0), "0 is a value, not 'unset'");
    }

    [Test]
    public void ARestartChangesOnlyTheAppliedIndexWithAWithExpression()
    {
        var options = new RaftOptions(3) { ElectionTimeoutTicks = 7, PreVote = true, CheckQuorum = true, ReadOnlyMode = ReadOnlyMode.LeaseBased, MaxInflightMessages = 3 };
        var restarted = options with { AppliedIndex = 0 };

        Assert.That(restarted, Is.EqualTo(options with { AppliedIndex = 0 }));
        Assert.That((restarted.Id, restarted.ElectionTimeoutTicks, restarted.PreVote, restarted.ReadOnlyMode, restarted.MaxInflightMessages), Is.EqualTo((3UL, 7, true, ReadOnlyMode.LeaseBased, 3)));
        Assert.That(options.AppliedIndex, Is.Null, "unset is explicit");
        Assert.That(restarted.AppliedIndex, Is.EqualTo(0UL));
        Assert.That(() => options with { ElectionTimeoutTicks = 0 }, Throws.TypeOf<ArgumentOutOfRangeException>(), "with expressions validate too");
    }

    [Test]
    public void AConfigurationSavedPastTheSnapshotRequiresTheAppliedIndexOnRestart()
    {
        var storage = MemoryStorage.WithVoters(1, 2, 3);
        storage.Append([new Messages.Entry(1, 1, Messages.EntryType.Normal, default)]);
        storage.SetConfState(new Messages.ConfState([1, 2, 3], learners: [4]));

        Assert.That(
            () => new RawNode(new RaftOptions(1), storage),
            Throws.ArgumentException.With.Message.Contains("AppliedIndex"));
        Assert.That(() => new RawNode(new RaftOptions(1) { AppliedIndex = 1 }, storage), Throws.Nothing);
    }

    [Test]
    public void ElectionJitterIsReproducibleFromTheSeed()
    {
        static int[] Timeouts(ulong seed)
        {
            var node = new RawNode(new RaftOptions(1) { RandomSeed = seed }, MemoryStorage.WithVoters(1, 2, 3));
            var result = new int[20];
            for (var i = 0; i < result.Length; i++)
            {
                node.Core.BecomeFollower((ulong)i + 1, 0);
                result[i] = node.Core.RandomizedElectionTimeout;
            }

            return result;
        }

        Assert.That(Timeouts(42), Is.EqualTo(Timeouts(42)));
        Assert.That(Timeouts(42), Is.Not.EqualTo(Timeouts(43)));
    }

    [Test]
    public void UnseededNodesDrawTheirJitterFromARandomSource()
    {
        // Two nodes with the same id and no seed (as two clusters' node 1, or one node restarted)
        // must not share a jitter sequence: 20 draws of 10 values collide by chance with
        // probability 10^-20.
        static int[] Timeouts()
        {
            var node = new RawNode(new RaftOptions(1), MemoryStorage.WithVoters(1, 2, 3));
            var result = new int[20];
            for (var i = 0; i < result.Length; i++)
            {
                node.Core.BecomeFollower((ulong)i + 1, 0);
                result[i] = node.Core.RandomizedElectionTimeout;
            }

            return result;
        }

        Assert.That(Timeouts(), Is.Not.EqualTo(Timeouts()));
    }

    [Test]
    public void OptionsFollowTheOptionsPattern()
    {
        var bound = new RaftOptions { Id = 2, ElectionTimeoutTicks = 20 };
        Assert.That(bound, Is.EqualTo(new RaftOptions(2) { ElectionTimeoutTicks = 20 }), "parameterless constructor and init setters, as configuration binding uses");
        Assert.That(RaftOptions.Default.ElectionTimeoutTicks, Is.EqualTo(RaftOptions.DefaultElectionTimeoutTicks));
        Assert.That(RaftOptions.Default.HeartbeatTimeoutTicks, Is.EqualTo(RaftOptions.DefaultHeartbeatTimeoutTicks));
        Assert.That(RaftOptions.Default.MaxSizePerMessageBytes, Is.EqualTo(RaftOptions.DefaultMaxSizePerMessageBytes));
        Assert.That(RaftOptions.Default.MaxInflightMessages, Is.EqualTo(RaftOptions.DefaultMaxInflightMessages));
        Assert.That(
            () => new RawNode(RaftOptions.Default, MemoryStorage.WithVoters(1)),
            Throws.ArgumentException.With.Property("ParamName").EqualTo("Id"),
            "an unset id is caught when the node is created");
        Assert.That(
            () => RaftOptions.Default with { ElectionTimeoutTicks = RaftOptions.MaxElectionTimeoutTicks + 1 },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ElectionTimeoutTicks")
                .And.Message.Contains("from 1 to " + RaftOptions.MaxElectionTimeoutTicks),
            "the message names the option and its range");
        Assert.That(
            () => new RaftOptions { MaxInflightMessages = 0 },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("MaxInflightMessages must be at least 1"));
    }

    // Guards the Raft core review's finding 8: election timeout bound.
    [Test]
    public void ElectionTimeoutsWhoseDoubleOverflowsAreRefused()
    {
        Assert.That(
            () => new RaftOptions(1) { ElectionTimeoutTicks = RaftOptions.MaxElectionTimeoutTicks + 1 },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ElectionTimeoutTicks"));
        Assert.That(
            () => new RaftOptions(1) { ElectionTimeoutTicks = int.MaxValue },
            Throws.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("ElectionTimeoutTicks"));
    }

    // Guards the Raft core review's finding 8: election timeout bound.
    [Test]
    public void TheLargestElectionTimeoutDrawsARandomizedTimeoutInRange()
    {
        var node = new RawNode(TestNode.Seeded(1) with { ElectionTimeoutTicks = RaftOptions.MaxElectionTimeoutTicks }, MemoryStorage.WithVoters(s_three));
        Assert.That(node.Core.RandomizedElectionTimeout, Is.InRange(RaftOptions.MaxElectionTimeoutTicks, int.MaxValue));
        node.Tick();
        Assert.That(node.SoftState.Role, Is.EqualTo(StateRole.Follower));
    }

    // Guards the Raft core review's finding 13: inflight bytes against the message size.
    [Test]
    public void AnInflightByteLimitBelowTheMessageSizeIsRefusedNamingBothOptions()
    {
        var options = TestNode.Seeded(1) with { MaxSizePerMessageBytes = 1000, MaxInflightBytes = 999 };
        Assert.That(
            options.Validate,
            Throws.ArgumentException.With.Property("ParamName").EqualTo("MaxInflightBytes")
                .And.Message.Contains("MaxSizePerMessageBytes"));

        Assert.DoesNotThrow(new RaftOptions(1) { MaxSizePerMessageBytes = 1000, MaxInflightBytes = 1000 }.Validate);
        Assert.DoesNotThrow(new RaftOptions(1) { MaxSizePerMessageBytes = 1000, MaxInflightBytes = 0 }.Validate);
    }
}
