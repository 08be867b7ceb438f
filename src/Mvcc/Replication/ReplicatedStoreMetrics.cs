using System.Diagnostics.Metrics;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The replicated store's instruments on the meter <see cref="MeterName"/>, every measurement
/// tagged <c>member.id</c>: lease expiries the leader revoked, hash checks compared, and hash
/// mismatches (each raises the corruption alarm).
/// </summary>
internal static class ReplicatedStoreMetrics
{
    public const string MeterName = "EmbeddedRaft.Mvcc.Replication";
    public const string MemberIdTag = "member.id";

    private static readonly Meter s_meter = new(MeterName);

    private static readonly Counter<long> s_leasesExpired = s_meter.CreateCounter<long>(
        "embeddedraft.mvcc.leases.expired", "{lease}", "Leases this member, as leader, revoked because their TTL ran out (committed revocations).");

    private static readonly Counter<long> s_hashChecks = s_meter.CreateCounter<long>(
        "embeddedraft.mvcc.hash_checks", "{check}", "Cross-member hash checks this member compared with at least two reports at one compact revision.");

    private static readonly Counter<long> s_hashMismatches = s_meter.CreateCounter<long>(
        "embeddedraft.mvcc.hash_mismatches", "{check}", "Hash checks whose members disagreed: each raised the corruption alarm.");

    public static void LeaseExpired(ulong memberId) => s_leasesExpired.Add(1, Tag(memberId));

    public static void HashChecked(ulong memberId) => s_hashChecks.Add(1, Tag(memberId));

    public static void HashMismatch(ulong memberId) => s_hashMismatches.Add(1, Tag(memberId));

    private static KeyValuePair<string, object?> Tag(ulong memberId) => new(MemberIdTag, (long)memberId);
}
