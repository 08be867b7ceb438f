namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// A state captured by <see cref="IStateMachine{TResult}.CreateSnapshot"/>: written out once by
/// the node, off its loop and concurrently with later applies, then disposed.
/// </summary>
public interface IStateMachineSnapshot : IAsyncDisposable
{
    /// <summary>The log index the captured state is as of.</summary>
    ulong Index { get; }

    /// <summary>Writes the captured state to <paramref name="destination"/> (the snapshot file, streamed).</summary>
    ValueTask WriteToAsync(Stream destination, CancellationToken cancellationToken);
}
