using EmbeddedRaft.Mvcc.Replication;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// What the services of one member's endpoint share: the member's store and the server's options.
/// The endpoint starts listening before the store has started (so its client URL, with the port
/// it was given, can be registered with the member); until then a call answers etcd's
/// "server stopped" (UNAVAILABLE), which etcd's clients retry.
/// </summary>
internal sealed class EtcdMember(string name, EtcdServerOptions options)
{
    private ReplicatedStore? _store;

    public string Name { get; } = name;

    public EtcdServerOptions Options { get; } = options;

    public ReplicatedStore Store => Volatile.Read(ref _store) ?? throw EtcdErrors.Stopped;

    public bool HasStarted => Volatile.Read(ref _store) is not null;

    public void Started(ReplicatedStore store) => Volatile.Write(ref _store, store);

    /// <summary>etcd's response header: this member and cluster, <paramref name="revision"/>, the current term.</summary>
    public Etcd.ResponseHeader Header(long revision) => Header(revision, Store.Status.RaftTerm);

    public Etcd.ResponseHeader Header(long revision, ulong raftTerm) => new()
    {
        ClusterId = Store.ClusterId,
        MemberId = Store.MemberId,
        Revision = revision,
        RaftTerm = raftTerm,
    };
}
