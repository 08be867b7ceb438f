namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>One command as a state machine applied it: the log index and the command's text.</summary>
internal readonly record struct AppliedCommand(ulong Index, string Command);
