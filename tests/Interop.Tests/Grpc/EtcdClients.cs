using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>The etcd v3 clients of one member's endpoint, over one HTTP/2 channel (Grpc.Net.Client).</summary>
internal sealed class EtcdClients : IDisposable
{
    private readonly GrpcChannel _channel;

    public EtcdClients(string clientUrl)
    {
        _channel = GrpcChannel.ForAddress(clientUrl);
        Kv = new KV.KVClient(_channel);
        Watch = new Watch.WatchClient(_channel);
        Cluster = new Cluster.ClusterClient(_channel);
        Maintenance = new Maintenance.MaintenanceClient(_channel);
        Auth = new Auth.AuthClient(_channel);
        Lease = new Lease.LeaseClient(_channel);
    }

    public KV.KVClient Kv { get; }

    public Watch.WatchClient Watch { get; }

    public Cluster.ClusterClient Cluster { get; }

    public Maintenance.MaintenanceClient Maintenance { get; }

    public Auth.AuthClient Auth { get; }

    public Lease.LeaseClient Lease { get; }

    public static ByteString Bytes(string text) => ByteString.CopyFromUtf8(text);

    /// <summary>
    /// A put as an etcd client makes it through a leader change: retried while the server answers
    /// UNAVAILABLE (no leader, leader changed), as etcd's clients retry.
    /// </summary>
    public async Task<PutResponse> PutRetryingAsync(string key, string value)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await Kv.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes(value) }, deadline: DateTime.UtcNow.AddSeconds(10));
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded && attempt < 200)
            {
                // Bounded: 200 attempts, each waiting for the server's answer (no sleep).
            }
        }
    }

    public void Dispose() => _channel.Dispose();
}
