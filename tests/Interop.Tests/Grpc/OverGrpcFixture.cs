namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>
/// One 3-member etcd-compatible cluster of ours per test class, with a gRPC client per member
/// (index i talks to member i), started once for the class and stopped after it.
/// </summary>
public abstract class OverGrpcFixture
{
    /// <summary>The cluster under test.</summary>
    private protected OurEtcdCluster Ours { get; private set; } = null!;

    /// <summary>One client per member, in member order.</summary>
    private protected List<EtcdClients> Clients { get; private set; } = null!;

    [OneTimeSetUp]
    public async Task StartCluster()
    {
        Ours = await OurEtcdCluster.StartOursAsync();
        Clients = [.. Ours.Cluster.Members.Select(m => new EtcdClients(m.ClientUrl))];
    }

    [OneTimeTearDown]
    public async Task StopCluster()
    {
        Clients.ForEach(c => c.Dispose());
        await Ours.DisposeAsync();
    }
}
