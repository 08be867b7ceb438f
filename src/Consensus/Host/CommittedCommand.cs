namespace EmbeddedRaft.Consensus.Host;

/// <summary>One committed command as the state machine sees it: the proposer's bytes and the log index it was committed at.</summary>
/// <param name="Index">The log index of the entry carrying the command.</param>
/// <param name="Data">The command exactly as given to <see cref="RaftNode{TResult}.ProposeAsync"/>; valid until the apply completes.</param>
public readonly record struct CommittedCommand(ulong Index, ReadOnlyMemory<byte> Data);
