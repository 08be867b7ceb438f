namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// The same seed run twice on one thread (manual time, fault-injecting disks, in-process network,
/// no background threads) gives the same execution: the traces of every delivered message,
/// snapshot, disk write and flush (each persisted Ready is one WAL write), applied entry and log
/// line are identical line for line.
/// </summary>
[TestFixture]
public sealed class DeterministicReplayTests
{
    [Test]
    public void TheSameSeedGivesAnIdenticalTrace()
    {
        int seed = RandomCrashRestartTests.Seeds[0];
        TestContext.Out.WriteLine($"seed {seed} (replay with RAFT_CLUSTER_SEED={seed})");
        List<string> first;
        using (var cluster = RandomCrashRestartTests.RunScenario(seed, TimeSpan.FromSeconds(2)))
        {
            first = [.. cluster.Trace];
        }

        List<string> second;
        using (var cluster = RandomCrashRestartTests.RunScenario(seed, TimeSpan.FromSeconds(2)))
        {
            second = [.. cluster.Trace];
        }

        Assert.That(first.Count(l => l.Contains(" apply ", StringComparison.Ordinal)), Is.GreaterThan(10), "the trace records applies");
        Assert.That(first.Count(l => l.Contains(" receive ", StringComparison.Ordinal)), Is.GreaterThan(100), "the trace records deliveries");
        Assert.That(first.Count(l => l.Contains(" disk Flush ", StringComparison.Ordinal)), Is.GreaterThan(10), "the trace records the persisted Readies (WAL writes and flushes)");
        int firstDifference = Enumerable.Range(0, Math.Min(first.Count, second.Count)).FirstOrDefault(i => first[i] != second[i], -1);
        Assert.That(firstDifference, Is.EqualTo(-1), firstDifference < 0 ? string.Empty : $"first difference at line {firstDifference}:\n  {first[firstDifference]}\n  {second[firstDifference]}");
        Assert.That(second, Has.Count.EqualTo(first.Count));
    }
}
