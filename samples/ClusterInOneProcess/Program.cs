// ClusterInOneProcess: three members of a replicated store in this process, over the in-process
// network, each with a real write-ahead log, snapshots and B+tree in a temporary directory (deleted
// at the end). The story is in ../Shared/ClusterStory.cs; this file only chooses the network.
//
//   dotnet run -c Release --project samples/ClusterInOneProcess            the full story (about 30 s)
//   dotnet run -c Release --project samples/ClusterInOneProcess -- --short  a few seconds (CI)
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

return await new ClusterStory(_ => new InProcessFabric(), mode).RunAsync();
