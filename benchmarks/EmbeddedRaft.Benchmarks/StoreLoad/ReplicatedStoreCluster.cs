using System.Runtime.CompilerServices;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// Three EmbeddedRaft <see cref="ReplicatedStore"/>s in this process over an
/// <see cref="InProcessNetwork"/> (perfect links), each with its own data directory (Raft WAL +
/// snapshots, MVCC B+tree) on the real disk. Every operation goes to the member the caller names:
/// a put on a follower is forwarded to the leader and completes once applied on that follower; a
/// linearizable range is a read-index round on the member asked; a serializable one reads its
/// local store. Raft tuning as in the cluster-load benchmark's RaftNode cluster (10 ms ticks,
/// one-second election timeout, PreVote and CheckQuorum).
/// </summary>
internal sealed class ReplicatedStoreCluster : IKvClusterUnderLoad
{
    private readonly ReplicatedStore[] _members;
    private readonly InProcessNetwork _network;
    private long _compactedRevision;

    private ReplicatedStoreCluster(ReplicatedStore[] members, InProcessNetwork network)
    {
        _members = members;
        _network = network;
    }

    public string Name => "EmbeddedRaft ReplicatedStore";

    public int LeaderIndex => Math.Max(0, Array.FindIndex(_members, m => m.MemberId == _members[0].Status.LeaderId));

    public TimeSpan ExternalProcessorTime => TimeSpan.Zero;

    public static async Task<ReplicatedStoreCluster> StartAsync(string directory, ulong? snapshotEveryEntries, CancellationToken cancellationToken)
    {
        var network = new InProcessNetwork();
        ulong[] ids = [1, 2, 3];
        // The registry wants tcp:// peer URLs; over an InProcessNetwork they are names only, never dialled.
        var initialMembers = ids.Select(id => new MemberInfo(id, $"m{id}", [$"tcp://127.0.0.1:{2380 + (int)id}"], [])).ToArray();
        var members = new ReplicatedStore[3];
        try
        {
            for (int i = 0; i < 3; i++)
            {
                var options = new ReplicatedStoreOptions
                {
                    MemberId = ids[i],
                    DataDirectory = Path.Combine(directory, $"store-{ids[i]}"),
                    InitialMembers = initialMembers,
                    Raft = new RaftNodeOptions
                    {
                        TickInterval = TimeSpan.FromMilliseconds(10),
                        SnapshotEveryEntries = snapshotEveryEntries ?? RaftNodeOptions.DefaultSnapshotEveryEntries,
                        Raft = RaftOptions.Default with
                        {
                            ElectionTimeoutTicks = 100,
                            HeartbeatTimeoutTicks = 10,
                            MaxInflightMessages = 1024,
                            MaxSizePerMessageBytes = 1024 * 1024,
                            PreVote = true,
                            CheckQuorum = true,
                        },
                    },
                };
                members[i] = await ReplicatedStore.StartAsync(options, network.CreateTransport(ids[i]), cancellationToken);
            }

            var cluster = new ReplicatedStoreCluster(members, network);
            await cluster.WaitForLeaderAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            foreach (var member in members.Where(m => m is not null))
            {
                await member.DisposeAsync();
            }

            network.Dispose();
            throw;
        }
    }

    public bool Supports(StoreLoadWorkload workload) => true;

    // Pooled, as GetAsync: its box lived as long as the put (~28 ms at 1,024 in flight), so it was
    // promoted with the library's objects (docs/benchmarks.md, "Replicated puts, session 19").
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask PutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken) =>
        await _members[member].PutAsync(new PutRequest { Key = key, Value = value }, cancellationToken);

    // Pooled, as StoreLoadData.ExecuteAsync, its only caller (which awaits it once).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<int> GetAsync(int member, ReadOnlyMemory<byte> key, bool linearizable, CancellationToken cancellationToken)
    {
        var response = await _members[member].RangeAsync(
            new RangeRequest { Key = key },
            linearizable ? ReadConsistency.Linearizable : ReadConsistency.Serializable,
            cancellationToken);
        return response.Kvs.Count == 0 ? -1 : response.Kvs[0].Value.Length;
    }

    public async ValueTask<bool> CompareAndPutAsync(int member, ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> expected, ReadOnlyMemory<byte> value, CancellationToken cancellationToken)
    {
        var response = await _members[member].TxnAsync(
            new TxnRequest
            {
                Compare = [new Compare { Result = CompareResult.Equal, Target = CompareTarget.Value, Key = key, Value = expected }],
                Success = [RequestOp.Put(new PutRequest { Key = key, Value = value })],
                Failure = [RequestOp.Range(new RangeRequest { Key = key })],
            },
            cancellationToken);
        return response.Succeeded;
    }

    public async ValueTask CompactAsync(CancellationToken cancellationToken)
    {
        var leader = _members[LeaderIndex];
        long revision = leader.Status.Revision;
        if (revision > _compactedRevision)
        {
            await leader.CompactAsync(revision, physical: true, cancellationToken);
            _compactedRevision = revision;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var member in _members)
        {
            await member.DisposeAsync();
        }

        _network.Dispose();
    }

    private async Task WaitForLeaderAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        await foreach (var change in _members[0].LeaderChanges(timeout.Token))
        {
            if (change.LeaderId != 0)
            {
                return;
            }
        }
    }
}
