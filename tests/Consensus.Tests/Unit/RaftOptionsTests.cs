namespace EmbeddedRaft.Consensus.Tests.Unit;

public class RaftOptionsTests
{
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
}
