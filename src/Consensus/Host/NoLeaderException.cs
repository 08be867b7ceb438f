namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// The node knows no leader (an election is running or it is cut off), so it cannot take the
/// request now; nothing was appended, and the caller may retry, here or on
/// <see cref="LastKnownLeader"/>.
/// </summary>
public sealed class NoLeaderException : Exception
{
    internal NoLeaderException(ulong nodeId, ulong lastKnownLeader)
        : base(lastKnownLeader == 0
            ? $"Node {nodeId} knows no leader (none seen yet); retry once one is elected."
            : $"Node {nodeId} knows no leader (the last it knew was {lastKnownLeader}); retry once one is elected.")
    {
        LastKnownLeader = lastKnownLeader;
    }

    /// <summary>The last leader this node knew, or 0 if it never knew one.</summary>
    public ulong LastKnownLeader { get; }
}
