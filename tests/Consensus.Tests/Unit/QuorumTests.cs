using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Quorum;
using EmbeddedRaft.Consensus.Tracking;

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

    [TestCase(new ulong[] { 1, 2, 3 }, new ulong[] { 1, 2 }, new ulong[0], nameof(VoteResult.Won))]
    [TestCase(new ulong[] { 1, 2, 3 }, new ulong[] { 1 }, new ulong[] { 2, 3 }, nameof(VoteResult.Lost))]
    [TestCase(new ulong[] { 1, 2, 3 }, new ulong[] { 1 }, new ulong[] { 2 }, nameof(VoteResult.Pending))]
    [TestCase(new ulong[0], new ulong[0], new ulong[0], nameof(VoteResult.Won))]
    public void MajorityVoteIsWonLostOrPending(ulong[] voters, ulong[] yes, ulong[] no, string expected)
    {
        var votes = yes.ToDictionary(v => v, _ => true);
        foreach (var v in no)
        {
            votes[v] = false;
        }

        Assert.That(new MajorityConfig(voters).Tally(votes).ToString(), Is.EqualTo(expected));
    }

    [Test]
    public void JointVoteNeedsBothHalves()
    {
        var joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));

        Assert.That(joint.Tally(new Dictionary<ulong, bool> { [1] = true, [2] = true }), Is.EqualTo(VoteResult.Pending));
        Assert.That(joint.Tally(new Dictionary<ulong, bool> { [1] = true, [2] = true, [4] = false, [5] = false }), Is.EqualTo(VoteResult.Lost));
        Assert.That(joint.Tally(new Dictionary<ulong, bool> { [1] = true, [3] = true, [4] = true }), Is.EqualTo(VoteResult.Won));
    }

    /// <summary>
    /// The definition of a joint commit: the largest acknowledged index (or 0) that a majority of
    /// every non-empty half has reached; with no voters at all, nothing constrains it.
    /// </summary>
    private static ulong NaiveJointCommitted(ulong[] incoming, ulong[] outgoing, Dictionary<ulong, ulong> acked)
    {
        if (incoming.Length == 0 && outgoing.Length == 0)
        {
            return ulong.MaxValue;
        }

        bool ReachedByMajority(ulong[] half, ulong index) =>
            half.Length == 0 || half.Count(v => acked.GetValueOrDefault(v) >= index) > half.Length / 2;

        return acked.Values.Append(0UL).Where(index => ReachedByMajority(incoming, index) && ReachedByMajority(outgoing, index)).Max();
    }

    /// <summary>
    /// The definition of a joint election: won if the votes cast already give a majority in every
    /// half; lost if even every missing vote being yes would not; pending otherwise.
    /// Votes of non-voters do not count.
    /// </summary>
    private static VoteResult NaiveJointVote(ulong[] incoming, ulong[] outgoing, Dictionary<ulong, bool> votes)
    {
        bool Wins(ulong[] half, bool missingVotesYes) =>
            half.Length == 0 || half.Count(v => votes.TryGetValue(v, out var yes) ? yes : missingVotesYes) > half.Length / 2;

        if (Wins(incoming, false) && Wins(outgoing, false))
        {
            return VoteResult.Won;
        }

        return Wins(incoming, true) && Wins(outgoing, true) ? VoteResult.Pending : VoteResult.Lost;
    }

    [Test]
    public void JointCommittedIndexAndVoteMatchTheNaiveDefinitionOverRandomConfigurations()
    {
        const int seed = 2026;
        const int cases = 20_000;
        TestContext.Out.WriteLine($"seed {seed}, {cases} random joint configurations");
        var random = new Random(seed);
        var outcomes = new Dictionary<VoteResult, int>();
        for (var i = 0; i < cases; i++)
        {
            // Ids 1..9, each an incoming voter, an outgoing voter, both, a learner, or nothing.
            var pool = Enumerable.Range(1, 9).Select(v => (ulong)v).ToArray();
            var incoming = pool.Where(_ => random.Next(3) == 0).ToArray();
            var outgoing = random.Next(3) == 0 ? [] : pool.Where(_ => random.Next(3) == 0).ToArray();
            var learners = pool.Where(v => !incoming.Contains(v) && !outgoing.Contains(v) && random.Next(3) == 0).ToArray();
            var learnersNext = outgoing.Length == 0 ? [] : outgoing.Where(v => !incoming.Contains(v) && random.Next(2) == 0).ToArray();
            var conf = new ConfState(incoming, outgoing, learners, learnersNext);
            var tracker = new ProgressTracker(8, 0);
            tracker.Reset(conf, 1);

            // Acknowledgements from members only (learners included: they must not count).
            var acked = new Dictionary<ulong, ulong>();
            foreach (var id in tracker.MemberIds.Where(_ => random.Next(4) > 0))
            {
                acked[id] = (ulong)random.Next(0, 12);
                tracker.Progress[id].Match = acked[id];
            }

            var voterAcks = acked.Where(a => incoming.Contains(a.Key) || outgoing.Contains(a.Key)).ToDictionary();
            var expectedCommit = NaiveJointCommitted(incoming, outgoing, voterAcks);
            var context = $"case {i} (seed {seed}): {conf}, acked {string.Join(' ', acked.Select(a => $"{a.Key}:{a.Value}"))}";
            Assert.That(tracker.Committed(), Is.EqualTo(expectedCommit), context);
            Assert.That(
                new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing)).CommittedIndex(new MapIndexer(acked)),
                Is.EqualTo(expectedCommit),
                context);

            var votes = new Dictionary<ulong, bool>();
            foreach (var id in tracker.MemberIds.Where(_ => random.Next(3) > 0))
            {
                votes[id] = random.Next(2) == 0;
                tracker.RecordVote(id, votes[id]);
            }

            var expectedVote = NaiveJointVote(incoming, outgoing, votes);
            Assert.That(tracker.TallyVotes().Result, Is.EqualTo(expectedVote), $"{context}, votes {string.Join(' ', votes.Select(v => $"{v.Key}:{v.Value}"))}");
            outcomes[expectedVote] = outcomes.GetValueOrDefault(expectedVote) + 1;
        }

        // The generator must reach every outcome often, or the comparison proves little.
        Assert.That(outcomes.Keys, Is.EquivalentTo(new[] { VoteResult.Won, VoteResult.Lost, VoteResult.Pending }));
        Assert.That(outcomes.Values.Min(), Is.GreaterThan(cases / 20), string.Join(", ", outcomes));
    }
}
