using System.Diagnostics;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples;

/// <summary>
/// The story's members: starts, stops and restarts their stores on the fabric, and says which are
/// running and who leads. Every member's data lives under one root directory.
/// </summary>
/// <remarks>
/// Define, start and stop are called by the story (several starts at once); <see cref="Running"/>
/// and <see cref="All"/> are read by the writers, the reader and the progress line from other
/// tasks, so they are arrays swapped whole under a lock, never changed in place.
/// </remarks>
internal sealed class StoryCluster(IClusterFabric fabric, string rootDirectory, ILoggerFactory loggerFactory) : IAsyncDisposable
{
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(25);
    private readonly Lock _changing = new(); // serializes the swaps below (members start concurrently)
    private volatile StoryMember[] _members = [];
    private volatile StoryMember[] _running = [];

    /// <summary>The members whose store is running now (a snapshot; never changes once read).</summary>
    public IReadOnlyList<StoryMember> Running => _running;

    /// <summary>Every member defined so far, running or not, by id (a snapshot).</summary>
    public IReadOnlyList<StoryMember> All => _members;

    /// <summary>Reserves a member's address on the fabric and its data directory; does not start it.</summary>
    public StoryMember Define(ulong id, bool isLearner = false)
    {
        string name = $"member-{id}";
        var member = new StoryMember(fabric.Describe(id, name, isLearner), Path.Combine(rootDirectory, name));
        lock (_changing)
        {
            _members = [.. _members.Append(member).OrderBy(m => m.Id)];
        }

        return member;
    }

    /// <summary>
    /// Starts a member's store. With <paramref name="initialMembers"/> an empty directory bootstraps
    /// a new cluster (and a directory that holds a log ignores them: a restart); with null the
    /// member starts empty and waits for the leader of a cluster that added it.
    /// </summary>
    public async Task StartAsync(StoryMember member, IReadOnlyList<MemberInfo>? initialMembers)
    {
        var options = new ReplicatedStoreOptions
        {
            MemberId = member.Id,
            DataDirectory = member.DataDirectory,
            InitialMembers = initialMembers,
            ClusterId = fabric.ClusterId,
            Raft = new RaftNodeOptions
            {
                // Ticks of 50 ms: a dead leader is replaced in 0.5-1 s (etcd's defaults, 100 ms, take twice that).
                TickInterval = TimeSpan.FromMilliseconds(50),
                Raft = new RaftOptions { PreVote = true, CheckQuorum = true },
                // Snapshots often enough that the learner below is sent one instead of the whole log.
                SnapshotEveryEntries = 5_000,
                // A put or read forwarded to a leader that has just died is lost with it; the caller
                // learns so only when this runs out (default 5 s; etcd waits 5 s plus two elections).
                // 2 s lets the writers move on to the new leader quickly, while still well above the
                // slowest put on a loaded machine.
                ProposalTimeout = TimeSpan.FromSeconds(2),
                ReadIndexTimeout = TimeSpan.FromSeconds(2),
            },
            HashCheckInterval = TimeSpan.FromSeconds(2),
            LoggerFactory = loggerFactory,
        };
        var transport = fabric.OpenTransport(member.Id, [.. _members.Select(m => m.Info)]);
        member.Store = await ReplicatedStore.StartAsync(options, transport).ConfigureAwait(false);
        lock (_changing)
        {
            _running = [.. _running.Append(member).OrderBy(m => m.Id)];
        }
    }

    /// <summary>Stops a member: disposes its store (as a crash would, minus the lost page cache) and closes its transport.</summary>
    public async Task StopAsync(StoryMember member)
    {
        lock (_changing)
        {
            _running = [.. _running.Where(m => m != member)];
        }

        if (member.Store is { } store)
        {
            member.Store = null;
            await store.DisposeAsync().ConfigureAwait(false);
        }

        await fabric.CloseTransportAsync(member.Id).ConfigureAwait(false);
    }

    /// <summary>The leader as the running members report it, if one of them is running and some member knows it.</summary>
    public StoryMember? KnownLeader()
    {
        foreach (var member in _running)
        {
            ulong leaderId = member.Store?.Status.LeaderId ?? 0;
            if (leaderId != 0 && _running.FirstOrDefault(m => m.Id == leaderId) is { } leader)
            {
                return leader;
            }
        }

        return null;
    }

    /// <summary>Waits (at most <paramref name="limit"/>) until the running members agree on a running leader; null when they did not.</summary>
    public async Task<StoryMember?> WaitForLeaderAsync(TimeSpan limit)
    {
        StoryMember? leader = null;
        await WaitUntilAsync(() =>
        {
            leader = KnownLeader();
            return leader is not null && _running.All(m => m.Store?.Status.LeaderId == leader.Id);
        }, limit).ConfigureAwait(false);
        return leader is not null && _running.All(m => m.Store?.Status.LeaderId == leader.Id) ? leader : null;
    }

    /// <summary>
    /// Polls <paramref name="condition"/> until it holds or <paramref name="limit"/> passes; returns
    /// whether it held. (A sample may poll: it shows what happens, it does not time it.)
    /// </summary>
    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > limit)
            {
                return false;
            }

            await Task.Delay(s_pollInterval).ConfigureAwait(false);
        }

        return true;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var member in _running)
        {
            await StopAsync(member).ConfigureAwait(false);
        }
    }
}
