using ConsensusRules = EmbeddedRaft.Consensus.TestOnlyBrokenRules;
using StoreRules = EmbeddedRaft.Mvcc.TestOnlyBrokenRules;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// The simulator's checkers can fail: with one rule of the libraries broken on purpose (a test-only
/// switch), the simulator finds a violation within a bounded number of seeds and prints it; with the
/// switch off, the seeds it searched pass. Each search stops at the first violation.
/// </summary>
/// <remarks>
/// The switches are per member (<see cref="SimulationOptions.BrokenRaftRules"/>, <see cref="SimulationOptions.BrokenStoreRules"/>):
/// only the members of these runs break the rule, so other tests may run beside them. Each search starts at the seed where
/// a full search from the round start seed first found the violation (docs/testing.md records how far
/// each had to go; since the quorum crash at fsync and the windowed history check: 1, 22 (from 20168), 1 and 2 seeds; the read batch answered before its read index, session 19: 2, from 50000),
/// so the default run stays fast; SIM_BROKEN_FIRST_SEED_OFFSET=-n starts every search n seeds earlier.
/// </remarks>
public sealed class BrokenRuleTests
{
    private const int MaxSeeds = 200;

    [Test]
    public void AcknowledgingBeforeFsyncLosesAcknowledgedWrites() =>
        FindViolation(o => o with { BrokenRaftRules = new ConsensusRules { AcknowledgeBeforeFsync = true } }, firstSeed: 10_000, Profile.CrashHeavy);

    [Test]
    public void GrantingVotesWithoutTheLogCheckLosesCommittedEntries() =>
        FindViolation(o => o with { BrokenRaftRules = new ConsensusRules { GrantVoteWithoutLogCheck = true } }, firstSeed: 20_189, Profile.CrashHeavy);

    [Test]
    public void LinearizableReadsWithoutReadIndexAreStale() =>
        FindViolation(o => o with { BrokenStoreRules = new StoreRules { LinearizableReadWithoutReadIndex = true } }, firstSeed: 30_000, Profile.Partitions);

    [Test]
    public void ReadBatchesAnsweredBeforeTheirReadIndexAreStale() =>
        FindViolation(o => o with { BrokenStoreRules = new StoreRules { ReadBatchBeforeItsReadIndex = true } }, firstSeed: 50_001, Profile.Partitions);

    [Test]
    public void FollowersExpiringLeasesRevokeLeasesStillKeptAlive() =>
        FindViolation(o => o with { BrokenStoreRules = new StoreRules { FollowersExpireLeases = true } }, firstSeed: 40_001, Profile.SlowLinksWithLeases);

    private enum Profile
    {
        CrashHeavy,
        Partitions,
        SlowLinksWithLeases,
    }

    private static SimulationOptions Options(int seed, Profile profile) => profile switch
    {
        Profile.CrashHeavy => new SimulationOptions { Seed = seed, FaultPhase = TimeSpan.FromSeconds(4), Faults = NemesisFaults.Crashes | NemesisFaults.Partitions | NemesisFaults.LinkFaults, NemesisInterval = TimeSpan.FromMilliseconds(200) },
        Profile.Partitions => new SimulationOptions { Seed = seed, FaultPhase = TimeSpan.FromSeconds(4), Faults = NemesisFaults.Partitions | NemesisFaults.LinkFaults | NemesisFaults.LeaderTransfers, LeaseClients = 2 },

        // Leases kept alive by several clients while members are cut off, on slow links: a member that
        // comes back must catch up over round trips, long enough for its own expiry check to fire.
        _ => new SimulationOptions { Seed = seed, FaultPhase = TimeSpan.FromSeconds(5), Faults = NemesisFaults.Partitions, LeaseClients = 4, KvClients = 2, BaseLinkDelay = TimeSpan.FromMilliseconds(15) },
    };

    private static void FindViolation(Func<SimulationOptions, SimulationOptions> breakRule, int firstSeed, Profile profile)
    {
        string? offset = Environment.GetEnvironmentVariable("SIM_BROKEN_FIRST_SEED_OFFSET");
        if (!string.IsNullOrEmpty(offset))
        {
            firstSeed += int.Parse(offset, System.Globalization.CultureInfo.InvariantCulture);
        }

        SimulationResult? found = null;
        for (int seed = firstSeed; seed < firstSeed + MaxSeeds && found is null; seed++)
        {
            TestContext.Progress.WriteLine($"{TestContext.CurrentContext.Test.Name}: seed {seed}");
            var result = SimulationRun.Run(breakRule(Options(seed, profile)));
            if (!result.Passed)
            {
                found = result;
            }
        }

        Assert.That(found, Is.Not.Null, $"with the rule broken, no violation in {MaxSeeds} seeds from {firstSeed}");
        TestContext.Out.WriteLine($"Found after {found!.Seed - firstSeed + 1} seed(s):");
        TestContext.Out.WriteLine(found.Report(TestContext.CurrentContext.Test.Name));

        // The same seeds with the rule intact pass: the violation was the broken rule's.
        for (int seed = firstSeed; seed <= found.Seed; seed++)
        {
            var intact = SimulationRun.Run(Options(seed, profile));
            Assert.That(intact.Passed, Is.True, () => "with the rule intact: " + intact.Report(TestContext.CurrentContext.Test.Name));
        }
    }
}
