namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>The checker the cluster tests rely on catches each kind of broken promise (a checker that cannot fail proves nothing).</summary>
[TestFixture]
public sealed class ApplyHistoryCheckerTests
{
    private static readonly HashSet<string> s_proposed = ["a", "b", "c"];

    private static IReadOnlyList<string> Check(
        IReadOnlyList<AppliedCommand> one,
        IReadOnlyList<AppliedCommand> two,
        AcknowledgedProposal[]? acknowledged = null,
        bool requireAllCaughtUp = false) =>
        ApplyHistoryChecker.Check(
            new Dictionary<ulong, IReadOnlyList<AppliedCommand>> { [1] = one, [2] = two },
            acknowledged ?? [],
            s_proposed,
            requireAllCaughtUp);

    [Test]
    public void AgreeingHistoriesWithAShorterPrefixPass()
    {
        var violations = Check(
            [new(3, "a"), new(5, "b"), new(6, "c")],
            [new(3, "a"), new(5, "b")],
            [new AcknowledgedProposal("a", 1, 3), new AcknowledgedProposal("c", 2, 6)]);

        Assert.That(violations, Is.Empty);
    }

    [Test]
    public void ACommandAppliedTwiceIsCaught()
    {
        var violations = Check([new(3, "a"), new(4, "a")], [new(3, "a"), new(4, "a")]);
        Assert.That(violations, Has.Some.Contains("applied twice"));
    }

    [Test]
    public void DifferentOrdersOnTwoNodesAreCaught()
    {
        var violations = Check([new(3, "a"), new(4, "b")], [new(3, "b"), new(4, "a")]);
        Assert.That(violations, Has.Some.Contains("where node"));
    }

    [Test]
    public void AnIndexGoingBackwardsIsCaught()
    {
        var violations = Check([new(4, "a"), new(3, "b")], []);
        Assert.That(violations, Has.Some.Contains("applied after"));
    }

    [Test]
    public void AnAcknowledgedProposalMissingFromACaughtUpNodeIsCaught()
    {
        var violations = Check([new(3, "a"), new(4, "b")], [new(3, "a"), new(5, "c")], [new AcknowledgedProposal("b", 1, 4)]);
        Assert.That(violations, Has.Some.Contains("acknowledged 'b'").And.Some.Contains("on node 2"));
    }

    [Test]
    public void ANodeThatHasNotCaughtUpIsCaughtOnlyWhenEveryNodeMustHave()
    {
        IReadOnlyList<AppliedCommand> one = [new(3, "a"), new(4, "b")];
        IReadOnlyList<AppliedCommand> two = [new(3, "a")];
        AcknowledgedProposal[] acknowledged = [new("b", 1, 4)];

        Assert.That(Check(one, two, acknowledged), Is.Empty);
        Assert.That(Check(one, two, acknowledged, requireAllCaughtUp: true), Has.Some.Contains("applied 0 times on node 2"));
    }

    [Test]
    public void AResultNamingAnotherIndexIsCaught()
    {
        var violations = Check([new(3, "a")], [new(3, "a")], [new AcknowledgedProposal("a", 1, 7)]);
        Assert.That(violations, Has.Some.Contains("named index 7"));
    }

    [Test]
    public void ACommandNobodyProposedIsCaught()
    {
        var violations = Check([new(3, "z")], []);
        Assert.That(violations, Has.Some.Contains("never proposed"));
    }
}
