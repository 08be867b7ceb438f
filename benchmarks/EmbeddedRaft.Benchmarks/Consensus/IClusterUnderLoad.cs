namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>A running three-node cluster the load generator drives: one call = one replicated command.</summary>
internal interface IClusterUnderLoad : IAsyncDisposable
{
    /// <summary>Shown in the results table.</summary>
    string Name { get; }

    /// <summary>Replicates <paramref name="command"/> and returns once the cluster says it is done (see each implementation for what "done" means).</summary>
    ValueTask ProposeAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken);

    /// <summary>Commands applied by the state machine of the node the load goes to.</summary>
    long AppliedCommands { get; }

    /// <summary>fsyncs (fdatasync) issued by all three nodes' logs since start; null when the library does not expose it.</summary>
    long? Fsyncs { get; }

    /// <summary>Milliseconds all three nodes' logs spent in those fsyncs (summed over nodes); null when the library does not expose it.</summary>
    double? FsyncMilliseconds => null;

    /// <summary>Entries the nodes' logs read back from their write-ahead logs (no longer cached), when known.</summary>
    long? EntriesReadBack => null;

    /// <summary>What the cluster's transport counted (messages, flushes, drops, reconnects, keep-alive timeouts); null when there is nothing to say.</summary>
    string? TransportSummary => null;
}
