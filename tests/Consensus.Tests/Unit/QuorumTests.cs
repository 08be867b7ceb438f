using EmbeddedRaft.Consensus.Quorum;

namespace EmbeddedRaft.Consensus.Tests.Unit;

public class QuorumTests
{
    private sealed class MapIndexer(Dictionary<ulong, ulong> acked) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong id, out ulong index) => acked.TryGetValue(id, out index);
    }

    /// <summary>The definition: the largest index that at least a majority has acknowledged.</summary>
    private static ulong NaiveCommitted(ulong[] voters, Dictionary<ulong, ulong> acked)
    {
        if (voters.Length == 0)
        {
            return ulong.MaxValue;
        }

        ulong best = 0;
        foreach (var candidate in voters.Select(v => acked.GetValueOrDefault(v)).Distinct())
        {
            var count = voters.Count(v => acked.GetValueOrDefault(v) >= candidate);
            if (count > voters.Length / 2)
            {
                best = Math.Max(best, candidate);
            }
        }

        return best;
    }

    [Test]
    public void MajorityCommittedIndexMatchesTheNaiveDefinition()
    {
        const int seed = 7;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        for (var i = 0; i < 5000; i++)
        {
            var voters = Enumerable.Range(1, random.Next(0, 8)).Select(v => (ulong)v).ToArray();
            var acked = voters.Where(_ => random.Next(5) > 0).ToDictionary(v => v, _ => (ulong)random.Next(0, 10));
            var config = new MajorityConfig(voters);

            Assert.That(config.CommittedIndex(new MapIndexer(acked)), Is.EqualTo(NaiveCommitted(voters, acked)), $"case {i}, seed {seed}");
        }
    }

    [Test]
    public void JointCommittedIndexIsTheMinimumOfBothHalves()
    {
        var acked = new Dictionary<ulong, ulong> { [1] = 10, [2] = 10, [3] = 2, [4] = 3, [5] = 3 };
        var joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));

        Assert.That(joint.CommittedIndex(new MapIndexer(acked)), Is.EqualTo(3));
        Assert.That(new JointConfig(new MajorityConfig([1, 2, 3]), MajorityConfig.Empty).CommittedIndex(new MapIndexer(acked)), Is.EqualTo(10));
    }

    [TestCase(new ulong[] { 1, 2, 3 }, new ulong[] { 1, 2 }, new ulong[0], VoteResult.Won)]
    [TestCase(new ulong[] { 1, 2, 3 }, new ulong[] { 1 }, new ulong[] { 2, 3 }, VoteResult.Lost)]
    [TestCase(new ulong[] { 1, 2, 3 }, new ulong[] { 1 }, new ulong[] { 2 }, VoteResult.Pending)]
    [TestCase(new ulong[0], new ulong[0], new ulong[0], VoteResult.Won)]
    public void MajorityVoteIsWonLostOrPending(ulong[] voters, ulong[] yes, ulong[] no, VoteResult expected)
    {
        var votes = yes.ToDictionary(v => v, _ => true);
        foreach (var v in no)
        {
            votes[v] = false;
        }

        Assert.That(new MajorityConfig(voters).Tally(votes), Is.EqualTo(expected));
    }

    [Test]
    public void JointVoteNeedsBothHalves()
    {
        var joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));

        Assert.That(joint.Tally(new Dictionary<ulong, bool> { [1] = true, [2] = true }), Is.EqualTo(VoteResult.Pending));
        Assert.That(joint.Tally(new Dictionary<ulong, bool> { [1] = true, [2] = true, [4] = false, [5] = false }), Is.EqualTo(VoteResult.Lost));
        Assert.That(joint.Tally(new Dictionary<ulong, bool> { [1] = true, [3] = true, [4] = true }), Is.EqualTo(VoteResult.Won));
    }
}
