using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>What a simulated member is doing now.</summary>
internal enum MemberState
{
    /// <summary>Never started, or added to the cluster and not yet started.</summary>
    NotStarted,

    /// <summary>Its store is running.</summary>
    Running,

    /// <summary>Crashed or fail-stopped; its disk keeps what it synced; it will be restarted.</summary>
    Down,

    /// <summary>Removed from the cluster and stopped for good (its id is never reused).</summary>
    Removed,
}

/// <summary>One member of the simulated cluster: its disk (which outlives crashes), its clock rate and its running store, if any.</summary>
internal sealed class SimulatedMember(ulong id, FaultInjectingFileSystem disk, TimeSpan tickInterval)
{
    public ulong Id { get; } = id;

    public FaultInjectingFileSystem Disk { get; } = disk;

    /// <summary>This member's Raft tick: members tick at different rates.</summary>
    public TimeSpan TickInterval { get; } = tickInterval;

    public ReplicatedStore? Store { get; set; }

    public MemberState State { get; set; }

    /// <summary>Starts so far (1 after the first start).</summary>
    public int Incarnation { get; set; }

    /// <summary>True while the nemesis has made its disk fail every write (it must stop).</summary>
    public bool DiskFailing { get; set; }

    /// <summary>
    /// While set, the nemesis made its disk slow: each write-ahead-log fsync first waits a delay of
    /// simulated time drawn from this range (its acknowledgements and applies lag; the others run on).
    /// </summary>
    public (int MinMilliseconds, int MaxMilliseconds)? SlowSync { get; set; }

    /// <summary>Draws the slow fsyncs' delays (seeded from the run's seed and the member's id).</summary>
    public Random SlowSyncRandom { get; init; } = new(0);

    /// <summary>Whether it joined an existing cluster (started empty) rather than bootstrapping one.</summary>
    public bool Joined { get; set; }

    /// <summary>The store's status, or null when it cannot answer (its disk crashed under it, it is disposed).</summary>
    public ReplicatedStoreStatus? TryStatus()
    {
        try
        {
            return Store?.Status;
        }
        catch (Exception e) when (e is SimulatedCrashException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            return null;
        }
    }

    public override string ToString() => $"m{Id}";
}
