using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests;

/// <summary>
/// For the whole test run: frames a replica's RaftNode received over TCP are poisoned when given
/// back to their pool (<see cref="ReceivedFramePoisoning"/>), so the replicated store over TCP
/// (ReplicatedTcpTests) fails if it reads a command's bytes after its apply completed.
/// </summary>
[SetUpFixture]
public sealed class ReceivedFramePoisoningSetUp : ReceivedFramePoisoningSetUpFixture;
