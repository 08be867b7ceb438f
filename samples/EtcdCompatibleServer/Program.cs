// The etcd v3 gRPC API served by an EmbeddedRaft cluster: with no arguments, three members in this
// process on 127.0.0.1:2379, 2380 and 2381, so a bare `etcdctl` (etcd's v3 client) talks to member
// 1. Settings: see EtcdServerOptions (e.g. --Members=1 --FirstClientPort=0 --DataDirectory=/srv/x
// --TlsCertificatePath=server.pem --TlsKeyPath=server-key.pem). Ctrl+C (or SIGTERM) stops it.
using System.Runtime.InteropServices;
using EmbeddedRaft.Samples.EtcdCompatibleServer;

IConfiguration configuration = new ConfigurationBuilder()
    .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
    .AddEnvironmentVariables("ETCDSERVER_")
    .AddCommandLine(args)
    .Build();
EtcdServerOptions options;
try
{
    options = configuration.Get<EtcdServerOptions>() ?? EtcdServerOptions.Default;
    options.Validate();
}
catch (Exception e) when (e is ArgumentException or InvalidOperationException)
{
    Console.Error.WriteLine($"Bad settings: {e.Message}");
    return 2;
}

using ILoggerFactory loggerFactory = LoggerFactory.Create(logging => logging
    .AddSimpleConsole(console => console.SingleLine = true)
    .SetMinimumLevel(LogLevel.Information)
    .AddFilter("Microsoft", LogLevel.Warning)
    .AddFilter("EmbeddedRaft", LogLevel.Warning)
    // Members stopping one after another make the others' transports warn about closed links.
    .AddFilter("EmbeddedRaft.Consensus.Transport", LogLevel.Error)
    .AddFilter("Grpc", LogLevel.Warning));
using var stopping = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    stopping.Cancel();
};
using PosixSignalRegistration terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
{
    context.Cancel = true;
    stopping.Cancel();
});

await using EtcdCluster cluster = await EtcdCluster.StartAsync(options, loggerFactory, stopping.Token);
Console.WriteLine($"{cluster.Members.Count} members serving the etcd v3 API (cluster {cluster.ClusterId:x}):");
foreach (EtcdClusterMember member in cluster.Members)
{
    Console.WriteLine($"  {member.Info.Name}  id {member.Info.Id:x}  client {member.ClientUrl}  peer {member.Info.PeerUrls[0]}");
}

Console.WriteLine($"Try: ETCDCTL_API=3 etcdctl --endpoints={string.Join(',', cluster.Members.Select(m => m.ClientUrl))} member list");
Console.WriteLine("Ctrl+C stops.");
try
{
    await Task.Delay(Timeout.Infinite, stopping.Token);
}
catch (OperationCanceledException)
{
    // Ctrl+C or SIGTERM.
}

Console.WriteLine("Stopping...");
return 0;
