using System.Globalization;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// A moment where a history may be cut (see <see cref="HistoryWindows"/>): at <paramref name="Ticks"/>
/// no client operation was in flight, the cluster had healed and every member had applied the same
/// log (so no proposal of a timed-out operation survives anywhere to apply later), and the store held
/// exactly <paramref name="State"/> (read then: every key with a range over the whole keyspace, the
/// leases with their granted TTLs, the compact revision).
/// </summary>
public sealed record QuiescentPoint(long Ticks, EtcdKvState State)
{
    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"quiescent at {Ticks}: {State}");
}
