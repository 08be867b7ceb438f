using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus;

/// <summary>
/// A proposal (or configuration change) this node forwarded to the leader and the leader
/// refused: reported in <see cref="Ready.RefusedProposals"/> so that the host can fail the
/// proposer's pending request at once instead of waiting for a timeout. Nothing was appended.
/// </summary>
/// <remarks>
/// <para>The leader sends the refusal back to the node it received the proposal from, with the
/// proposed entries, so the host matches it to its pending requests by their data (for
/// example a request id it embeds in each command). A refusal may be lost like any message: a
/// host still needs a timeout for proposals that are neither committed nor refused.</para>
/// <para>Immutable; safe to share between threads.</para>
/// </remarks>
public sealed class RefusedProposal
{
    internal RefusedProposal(ulong leaderId, ReadOnlyMemory<Entry> entries, Exception refusal)
    {
        LeaderId = leaderId;
        Entries = entries;
        Refusal = refusal;
    }

    /// <summary>The leader that refused the proposal.</summary>
    public ulong LeaderId { get; }

    /// <summary>The entries as proposed (no term or index): one batch, or one configuration change.</summary>
    public ReadOnlyMemory<Entry> Entries { get; }

    /// <summary>
    /// Why: a <see cref="ProposalDroppedException"/> (its <see cref="ProposalDroppedException.Reason"/>)
    /// or, for a configuration change, a <see cref="ConfChangeRejectedException"/> (its
    /// <see cref="ConfChangeRejectedException.Reason"/>); the same exception the leader's own
    /// <see cref="RawNode.Propose"/> would have thrown, ready to complete the proposer's task with.
    /// </summary>
    public Exception Refusal { get; }
}
