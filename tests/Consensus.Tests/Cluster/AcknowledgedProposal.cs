namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>A proposal whose ProposeAsync returned success: the command, the node it went to, and the index the result named.</summary>
internal readonly record struct AcknowledgedProposal(string Command, ulong Node, ulong AppliedIndex);
