using EmbeddedRaft.TestSupport.Simulation;
using static EmbeddedRaft.Simulation.Tests.Checkers.WatchCheckerTests;

namespace EmbeddedRaft.Simulation.Tests.Checkers;

/// <summary>Convergence after healing: equal revisions, and equal hashes wherever the hashed revision and the compaction are equal; the differing member named.</summary>
public sealed class ConvergenceCheckerTests
{
    [Test]
    public void Members_at_the_same_revision_with_the_same_hash_pass()
    {
        var result = ConvergenceChecker.Check([new(1, 40, 10, 40, 0xabc), new(2, 40, 10, 40, 0xabc), new(3, 40, 10, 40, 0xabc)]);
        Assert.That(result.Passed, result.ToString());
    }

    [Test]
    public void The_member_whose_hash_differs_from_the_majority_is_named()
    {
        var result = ConvergenceChecker.Check([new(1, 40, 10, 40, 0xabc), new(2, 40, 10, 40, 0xdef), new(3, 40, 10, 40, 0xabc)]);
        AssertCaught(result, "convergence.hash", "member 2 differs: hash 00000def at revision 40", "member(s) 1, 3 have 00000abc");
        Assert.That(result.Violations, Has.Count.EqualTo(1));
    }

    [Test]
    public void Without_a_majority_every_member_is_named()
    {
        var result = ConvergenceChecker.Check([new(1, 40, 10, 40, 0xabc), new(2, 40, 10, 40, 0xdef)]);
        AssertCaught(result, "convergence.hash", "member 1 differs", "member 2 differs", "no majority");
    }

    [Test]
    public void A_member_left_behind_is_named_and_hashes_over_different_compactions_are_not_compared()
    {
        var result = ConvergenceChecker.Check([new(1, 40, 10, 40, 0xabc), new(2, 40, 20, 40, 0x123), new(3, 38, 10, 38, 0x456)]);
        AssertCaught(result, "convergence.revision", "member 3 is at revision 38, others at 40 (1, 2)");
        Assert.That(Rules(result), Is.EqualTo(new[] { "convergence.revision" }), "different compactions hash different histories");

        Assert.That(ConvergenceChecker.Check([new(1, 40, 10, 40, 0xabc), new(3, 38, 10, 38, 0x456)], requireEqualRevisions: false).Passed);
    }
}
