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
