// TcpCluster: the ClusterInOneProcess story, but the members talk over the TCP transport with
// mutual TLS on loopback. A throwaway certificate authority and one certificate per member are made
// in memory at start; every member listens on a port the operating system picks, and its address
// reaches the others through MemberInfo.PeerUrls. Data lives in a temporary directory, deleted at the end.
//
//   dotnet run -c Release --project samples/TcpCluster             the full story
//   dotnet run -c Release --project samples/TcpCluster -- --short  a few seconds (CI)
//
// Exit code 0 when every check passed, 1 otherwise (the failed checks are named), 2 on bad arguments.
using EmbeddedRaft.Samples;

SampleMode mode;
try
{
    mode = SampleMode.FromArguments(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

using var authority = ThrowawayCertificateAuthority.Create("EmbeddedRaft sample CA");
return await new ClusterStory(loggerFactory => new TlsTcpFabric(authority, loggerFactory), mode).RunAsync();
