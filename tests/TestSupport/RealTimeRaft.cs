using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.TestSupport;

/// <summary>
/// The Raft timing of the test clusters that run on real time (the consensus tests' HostCluster and
/// TcpCluster, the MVCC tests' ReplicatedCluster and its TCP twin): one block, so a change to how
/// fast test clusters elect, time out or retry is made once for all of them.
/// </summary>
/// <remarks>
/// 10 ms ticks; an election after 20 silent ticks (200 ms) and a heartbeat every 2, so a 2-core
/// machine under load still keeps a leader while a lost one is replaced in well under a second.
/// PreVote and CheckQuorum on, as a deployment would run them. Proposals give up after 1 s (a test
/// retries through an election); a ReadIndex waits up to 10 s and is sent again every 100 ms.
/// The deterministic simulations do not use this: they tick a fake clock with their own timing.
/// </remarks>
public static class RealTimeRaft
{
    /// <summary>How much real time one Raft tick is in the test clusters.</summary>
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Node <paramref name="id"/>'s host options with the timing above and a core seeded from
    /// <paramref name="seed"/> and <paramref name="id"/> (seed × 100 + id, so every node of a seeded
    /// cluster draws its own election timeouts, and a seed replays them). Everything else (identity,
    /// directory, file system, log) is left at its default for the caller to set with <c>with</c>.
    /// </summary>
    public static RaftNodeOptions NodeOptions(int seed, ulong id) => new()
    {
        TickInterval = TickInterval,
        Raft = RaftOptions.Default with { ElectionTimeoutTicks = 20, HeartbeatTimeoutTicks = 2, PreVote = true, CheckQuorum = true, RandomSeed = (ulong)((seed * 100) + (int)id) },
        ProposalTimeout = TimeSpan.FromSeconds(1),
        ReadIndexTimeout = TimeSpan.FromSeconds(10),
        ReadIndexRetryInterval = TimeSpan.FromMilliseconds(100),
    };
}
