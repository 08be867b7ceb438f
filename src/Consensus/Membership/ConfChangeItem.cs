namespace EmbeddedRaft.Consensus.Membership;

/// <summary>One change to one node.</summary>
/// <param name="Type">What happens to the node.</param>
/// <param name="NodeId">The node; never 0.</param>
public readonly record struct ConfChangeItem(ConfChangeType Type, ulong NodeId)
{
    /// <inheritdoc/>
    public override string ToString() => Type switch
    {
        ConfChangeType.AddVoter => $"v{NodeId}",
        ConfChangeType.AddLearner => $"l{NodeId}",
        ConfChangeType.RemoveNode => $"r{NodeId}",
        _ => $"?{(byte)Type}:{NodeId}",
    };
}
