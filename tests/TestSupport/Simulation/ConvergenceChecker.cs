using System.Globalization;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// Checks that the members converged after healing: every member at the same revision (none left
/// behind), and equal hashes wherever two members hashed the same revision over the same compacted
/// history (etcd's corruption check compares only those). A differing member is named, with the
/// majority's answer beside its own.
/// </summary>
/// <remarks>Stateless and thread-safe.</remarks>
public static class ConvergenceChecker
{
    /// <summary>Checks <paramref name="members"/>' answers.</summary>
    /// <param name="members">One HashKV answer per member, after healing and quiescing.</param>
    /// <param name="requireEqualRevisions">Whether every member must be at the same revision (true after a full heal; false to compare hashes only).</param>
    /// <exception cref="ArgumentException">A member appears twice.</exception>
    public static CheckResult Check(IReadOnlyList<MemberHash> members, bool requireEqualRevisions = true)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Select(m => m.MemberId).Distinct().Count() != members.Count)
        {
            throw new ArgumentException("A member appears twice.", nameof(members));
        }

        var violations = new List<CheckViolation>();
        if (requireEqualRevisions && members.Count > 0)
        {
            long newest = members.Max(m => m.Revision);
            foreach (MemberHash behind in members.Where(m => m.Revision != newest))
            {
                violations.Add(new CheckViolation("convergence.revision", string.Create(CultureInfo.InvariantCulture,
                    $"member {behind.MemberId} is at revision {behind.Revision}, others at {newest} ({string.Join(", ", members.Where(m => m.Revision == newest).Select(m => m.MemberId))})")));
            }
        }

        int compared = 0;
        foreach (var group in members.GroupBy(m => (m.HashRevision, m.CompactRevision)).Where(g => g.Count() > 1))
        {
            compared++;
            var byHash = group.GroupBy(m => m.Hash).OrderByDescending(h => h.Count()).ThenBy(h => h.Min(m => m.MemberId)).ToList();
            if (byHash.Count == 1)
            {
                continue;
            }

            // With a majority, the members outside it differ; without one (a tie), every member is named.
            bool tie = byHash[1].Count() == byHash[0].Count();
            foreach (MemberHash member in byHash.Skip(tie ? 0 : 1).SelectMany(h => h))
            {
                string others = string.Join("; ", byHash.Where(h => h.Key != member.Hash)
                    .Select(h => string.Create(CultureInfo.InvariantCulture, $"member(s) {string.Join(", ", h.Select(m => m.MemberId))} have {h.Key:x8}")));
                violations.Add(new CheckViolation("convergence.hash", string.Create(CultureInfo.InvariantCulture,
                    $"member {member.MemberId} differs: hash {member.Hash:x8} at revision {member.HashRevision} (compacted at {member.CompactRevision}); {others}{(tie ? " (no majority)" : "")}")));
            }
        }

        string summary = string.Create(CultureInfo.InvariantCulture,
            $"{members.Count} members, revisions {(members.Count == 0 ? "-" : $"{members.Min(m => m.Revision)}..{members.Max(m => m.Revision)}")}, {compared} group(s) of equal hash revision compared");
        return new CheckResult("convergence", summary, violations);
    }
}
