namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>Which faults the nemesis may inject.</summary>
[Flags]
internal enum NemesisFaults
{
    None = 0,
    Partitions = 1,
    LinkFaults = 2,
    Crashes = 4,
    DiskErrors = 8,
    LeaderTransfers = 16,
    MembershipChanges = 32,
    SlowDisks = 64,
    All = Partitions | LinkFaults | Crashes | DiskErrors | LeaderTransfers | MembershipChanges | SlowDisks,
}

/// <summary>The shape of one simulated run; everything not set here is drawn from the seed.</summary>
internal sealed record SimulationOptions
{
    /// <summary>The one seed every random choice of the run derives from.</summary>
    public required int Seed { get; init; }

    /// <summary>Initial voters: 3 to 5; 0 draws 3 or 5 from the seed.</summary>
    public int Members { get; init; }

    /// <summary>Simulated time clients and the nemesis act (then the heal and quiesce phase follows).</summary>
    public TimeSpan FaultPhase { get; init; } = TimeSpan.FromSeconds(6);

    /// <summary>
    /// Times the fault phase stops for the nemesis to heal and the harness to take a quiescent point
    /// (clients paused, every member applied the same index, state read): the client history is
    /// checked in that many windows plus one.
    /// </summary>
    public int QuiescentPoints { get; init; } = 2;

    /// <summary>Simulated time after healing for the cluster to converge before the final checks.</summary>
    public TimeSpan QuiescePhase { get; init; } = TimeSpan.FromSeconds(3);

    public int KvClients { get; init; } = 4;

    public int LeaseClients { get; init; } = 1;

    public int Watchers { get; init; } = 2;

    public NemesisFaults Faults { get; init; } = NemesisFaults.All;

    /// <summary>Mean simulated time between two nemesis actions.</summary>
    public TimeSpan NemesisInterval { get; init; } = TimeSpan.FromMilliseconds(400);

    /// <summary>A member snapshots every this many applied entries (small: snapshots and installs happen in every run).</summary>
    public ulong SnapshotEveryEntries { get; init; } = 60;

    /// <summary>
    /// Every link's delay when no fault is injected (zero: messages arrive in the step they are sent).
    /// A delay makes catching up after a partition take round trips of simulated time.
    /// </summary>
    public TimeSpan BaseLinkDelay { get; init; }

    /// <summary>Return every trace event in the result (to find where two runs of one seed part).</summary>
    public bool KeepTrace { get; init; }

    /// <summary>Raft rules every member breaks on purpose (<see cref="BrokenRuleTests"/> only; per member, so other runs in the process keep them).</summary>
    public Consensus.TestOnlyBrokenRules BrokenRaftRules { get; init; } = Consensus.TestOnlyBrokenRules.None;

    /// <summary>Replicated-store rules every member breaks on purpose (<see cref="BrokenRuleTests"/> only).</summary>
    public Mvcc.TestOnlyBrokenRules BrokenStoreRules { get; init; } = Mvcc.TestOnlyBrokenRules.None;

    /// <summary>Entries the log keeps behind a snapshot (small: a lagging member needs a snapshot).</summary>
    public ulong RetainedEntries { get; init; } = 20;
}
