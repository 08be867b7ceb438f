using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.Mvcc.Replication;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>One member of an <see cref="EtcdCluster"/>: its endpoint, transport and store.</summary>
internal sealed class EtcdClusterMember(EtcdMember member, MemberInfo info, string clientUrl, WebApplication endpoint, TcpTransport transport) : IAsyncDisposable
{
    private int _disposed;

    public EtcdMember Member { get; } = member;

    /// <summary>The member as registered: id, name, its tcp:// peer URL and its client URL.</summary>
    public MemberInfo Info { get; } = info;

    /// <summary>Where the member serves the etcd API, "http://host:port" (https with TLS).</summary>
    public string ClientUrl { get; } = clientUrl;

    /// <summary>The member's store; throws until it has started.</summary>
    public ReplicatedStore Store => Member.Store;

    /// <summary>Whether this member has been stopped (<see cref="DisposeAsync"/>).</summary>
    public bool IsStopped => Volatile.Read(ref _disposed) != 0;

    public async Task StartStoreAsync(ReplicatedStoreOptions options, CancellationToken cancellationToken)
    {
        ReplicatedStore store = await ReplicatedStore.StartAsync(options, transport, cancellationToken).ConfigureAwait(false);
        Member.Started(store);
    }

    /// <summary>Completes when this member knows a leader.</summary>
    public async Task WaitForLeaderAsync(CancellationToken cancellationToken)
    {
        await foreach (Consensus.Host.LeaderChange change in Store.LeaderChanges(cancellationToken).ConfigureAwait(false))
        {
            if (change.LeaderId != 0)
            {
                return;
            }
        }

        throw new InvalidOperationException($"Member {Info.Name} stopped before it knew a leader.");
    }

    /// <summary>Stops the endpoint (open calls end), then the store, then the transport. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await endpoint.StopAsync().ConfigureAwait(false);
        await endpoint.DisposeAsync().ConfigureAwait(false);
        if (Member.HasStarted)
        {
            await Member.Store.DisposeAsync().ConfigureAwait(false);
        }

        await transport.DisposeAsync().ConfigureAwait(false);
    }
}
