namespace EmbeddedRaft.Consensus;

/// <summary>
/// A proposal was refused and will not be committed; the facts are in <see cref="Reason"/>.
/// Nothing was appended (or, for <see cref="ProposalDropReason.Overwritten"/>, what was appended
/// was replaced), so the caller may safely retry (possibly on another node) — except after
/// <see cref="ProposalDropReason.TimedOut"/>, where the outcome is unknown.
/// </summary>
public sealed class ProposalDroppedException : Exception
{
    /// <summary>Creates the exception for <paramref name="reason"/>.</summary>
    internal ProposalDroppedException(ProposalDropReason reason)
        : base($"Proposal dropped: {reason}.")
    {
        // Every refusal has a defined reason (one decoded from the wire is checked before it gets here).
        if (!Enum.IsDefined(reason))
        {
            throw new InvariantViolationException($"ProposalDroppedException created with undefined reason {(int)reason}.");
        }

        Reason = reason;
    }

    /// <summary>Why the proposal was dropped.</summary>
    public ProposalDropReason Reason { get; }
}
