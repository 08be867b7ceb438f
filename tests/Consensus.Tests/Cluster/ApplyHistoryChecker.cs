namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// The independent judge of a cluster run: given what every node's state machine applied (its
/// whole history, restored snapshots included) and which proposals were acknowledged, it lists
/// every broken promise. It knows nothing of Raft: only the client-visible contract.
/// </summary>
/// <remarks>
/// Rules: (1) on each node, indexes strictly increase (nothing applied twice or backwards);
/// (2) on each node, no command is applied twice (exactly once, even when the network
/// duplicated a forwarded proposal); (3) all nodes agree: one node's sequence of commands is a
/// prefix of another's, at the same indexes (same order everywhere); (4) nothing applied that no
/// client proposed; (5) every acknowledged proposal is applied on every node that has caught up
/// to its index, once, at the index its result named (with <c>requireAllCaughtUp</c>, every node
/// must have caught up).
/// </remarks>
internal static class ApplyHistoryChecker
{
    public static IReadOnlyList<string> Check(
        IReadOnlyDictionary<ulong, IReadOnlyList<AppliedCommand>> histories,
        IReadOnlyCollection<AcknowledgedProposal> acknowledged,
        IReadOnlySet<string> proposed,
        bool requireAllCaughtUp)
    {
        var violations = new List<string>();
        foreach (var (node, history) in histories)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < history.Count; i++)
            {
                if (i > 0 && history[i].Index <= history[i - 1].Index)
                {
                    violations.Add($"node {node}: index {history[i].Index} applied after {history[i - 1].Index}");
                }

                if (!seen.Add(history[i].Command))
                {
                    violations.Add($"node {node}: '{history[i].Command}' applied twice (again at index {history[i].Index})");
                }

                if (!proposed.Contains(history[i].Command))
                {
                    violations.Add($"node {node}: '{history[i].Command}' at index {history[i].Index} was never proposed");
                }
            }
        }

        // Agreement: compare every node with the longest history, position by position.
        var longest = histories.MaxBy(h => h.Value.Count);
        foreach (var (node, history) in histories)
        {
            for (int i = 0; i < history.Count && i < longest.Value.Count; i++)
            {
                if (history[i] != longest.Value[i])
                {
                    violations.Add($"node {node} applied {history[i]} where node {longest.Key} applied {longest.Value[i]} (position {i})");
                    break;
                }
            }
        }

        foreach (var proposal in acknowledged)
        {
            foreach (var (node, history) in histories)
            {
                var copies = history.Where(c => c.Command == proposal.Command).ToList();
                bool caughtUp = history.Count > 0 && history[^1].Index >= proposal.AppliedIndex;
                if (copies.Count == 0 && !caughtUp && !requireAllCaughtUp)
                {
                    continue;
                }

                if (copies.Count != 1)
                {
                    violations.Add($"acknowledged '{proposal.Command}' (via node {proposal.Node}, index {proposal.AppliedIndex}) applied {copies.Count} times on node {node}");
                }
                else if (copies[0].Index != proposal.AppliedIndex)
                {
                    violations.Add($"acknowledged '{proposal.Command}' named index {proposal.AppliedIndex} but node {node} applied it at {copies[0].Index}");
                }
            }
        }

        return violations;
    }
}
