namespace EmbeddedRaft.Consensus;

/// <summary>
/// The answer to a read-index request: once the application has applied up to
/// <see cref="Index"/>, a read of its state is linearizable (Raft thesis §6.4).
/// </summary>
/// <param name="Index">The commit index at the time the request was confirmed.</param>
/// <param name="RequestContext">The context given to <see cref="RawNode.ReadIndex"/>, to match the answer to its request.</param>
public readonly record struct ReadState(ulong Index, ReadOnlyMemory<byte> RequestContext);
