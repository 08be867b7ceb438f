using System.Globalization;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// One member's answer to HashKV after the cluster healed and quiesced, for <see cref="ConvergenceChecker"/>:
/// its current revision, its compact revision, and the hash of its key-value history at
/// <paramref name="HashRevision"/> (HashKVResponse: Header.Revision, CompactRevision, HashRevision, Hash).
/// </summary>
/// <param name="MemberId">The member.</param>
/// <param name="Revision">Its current revision (the response header's).</param>
/// <param name="CompactRevision">Its compact revision (the hash covers history above it).</param>
/// <param name="HashRevision">The revision the hash was computed at.</param>
/// <param name="Hash">The hash.</param>
public sealed record MemberHash(ulong MemberId, long Revision, long CompactRevision, long HashRevision, uint Hash)
{
    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"member {MemberId}: revision {Revision}, compacted at {CompactRevision}, hash {Hash:x8} at {HashRevision}");
}
