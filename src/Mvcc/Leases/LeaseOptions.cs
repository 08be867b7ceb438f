namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Settings of an <see cref="MvccStore"/>'s leases (<see cref="MvccStoreOptions.Leases"/>): the
/// clock that drives expiry, the minimum TTL, how often and how fast expired leases are revoked,
/// and whether the store revokes them itself. Each property checks its own range when set and
/// throws <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/>
/// is the property's name.
/// </summary>
/// <remarks>
/// <para>etcd's defaults: the minimum TTL is etcd's <c>minLeaseTTL</c>, which etcd computes as
/// 1.5 election timeouts rounded up to whole seconds (2 s with its default 100 ms heartbeat and 10
/// election ticks) so a lease cannot expire during a leader election; here it is an option, default
/// <see cref="DefaultMinTtlSeconds"/>. etcd checks for expired leases every 500 ms and revokes at
/// most 1,000 per second (<c>leaseRevokeRate</c>); so do these defaults.</para>
/// <para>An immutable record with a parameterless constructor and <c>init</c> accessors, so it
/// binds from Microsoft.Extensions.Configuration. Thread-safe to share.</para>
/// </remarks>
public sealed record LeaseOptions
{
    /// <summary>The default <see cref="MinTtlSeconds"/>: 2 s, etcd's minimum with its default election timeout.</summary>
    public const long DefaultMinTtlSeconds = 2;

    /// <summary>The longest TTL a lease may be granted: 9,000,000,000 s, etcd's <c>MaxLeaseTTL</c>.</summary>
    public const long MaxTtlSeconds = 9_000_000_000;

    /// <summary>The default <see cref="MaxRevokesPerSecond"/>: 1,000, etcd's <c>leaseRevokeRate</c>.</summary>
    public const int DefaultMaxRevokesPerSecond = 1_000;

    /// <summary>The largest <see cref="MaxRevokesPerSecond"/> accepted: 10,000,000.</summary>
    public const int MaxMaxRevokesPerSecond = 10_000_000;

    /// <summary>The default <see cref="ExpiryCheckInterval"/>: 500 ms, as etcd's lessor loop.</summary>
    public static readonly TimeSpan DefaultExpiryCheckInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>The default <see cref="ExpiredReportRetryInterval"/>: 3 s, etcd's <c>expiredLeaseRetryInterval</c>.</summary>
    public static readonly TimeSpan DefaultExpiredReportRetryInterval = TimeSpan.FromSeconds(3);

    /// <summary>Creates options with every default.</summary>
    public LeaseOptions()
    {
    }

    /// <summary>Every default: the system clock, etcd's minimum TTL, check interval and revoke rate, expired leases revoked by the store.</summary>
    public static LeaseOptions Default { get; } = new();

    /// <summary>The clock lease expiry is measured on (its monotonic timestamps). Default <see cref="TimeProvider.System"/>; tests pass a fake one.</summary>
    /// <exception cref="ArgumentNullException">Set to null.</exception>
    public TimeProvider TimeProvider
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(TimeProvider));
    } = TimeProvider.System;

    /// <summary>
    /// The shortest TTL a lease gets: a grant asking for less is granted this much (as etcd, which
    /// raises it silently rather than refusing). From 1 to <see cref="MaxTtlSeconds"/>. Default <see cref="DefaultMinTtlSeconds"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "MinTtlSeconds").</exception>
    public long MinTtlSeconds
    {
        get;
        init => field = OptionChecks.InRange(value, 1, MaxTtlSeconds, nameof(MinTtlSeconds));
    } = DefaultMinTtlSeconds;

    /// <summary>
    /// How often the store looks for expired leases (each look takes at most
    /// <see cref="MaxRevokesPerSecond"/> × this interval of them). A lease is revoked up to this long
    /// after its TTL ran out. From 1 ms to 1 minute. Default <see cref="DefaultExpiryCheckInterval"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "ExpiryCheckInterval").</exception>
    public TimeSpan ExpiryCheckInterval
    {
        get;
        init
        {
            if (value < TimeSpan.FromMilliseconds(1) || value > TimeSpan.FromMinutes(1))
            {
                throw new ArgumentOutOfRangeException(nameof(ExpiryCheckInterval), value, $"{nameof(ExpiryCheckInterval)} must be from 1 ms to 1 minute.");
            }

            field = value;
        }
    } = DefaultExpiryCheckInterval;

    /// <summary>
    /// The most expired leases revoked per second (etcd's <c>leaseRevokeRate</c>), so a mass expiry
    /// (100,000 leases in one second after a long pause) is spread out and never stalls writers:
    /// writers queued behind a round of revocations wait for at most
    /// <see cref="MaxRevokesPerSecond"/> × <see cref="ExpiryCheckInterval"/> of them. From 1 to
    /// <see cref="MaxMaxRevokesPerSecond"/>. Default <see cref="DefaultMaxRevokesPerSecond"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "MaxRevokesPerSecond").</exception>
    public int MaxRevokesPerSecond
    {
        get;
        init => field = OptionChecks.InRange(value, 1, MaxMaxRevokesPerSecond, nameof(MaxRevokesPerSecond));
    } = DefaultMaxRevokesPerSecond;

    /// <summary>
    /// True (default): the store revokes expired leases itself. False: it only reports them through
    /// <see cref="MvccStore.TakeExpiredLeases"/>, and whoever decides (a replicated store's leader)
    /// revokes them with <see cref="MvccStore.LeaseRevokeAsync"/> — so every replica applies the
    /// same revocations in the same order.
    /// </summary>
    public bool RevokeExpired { get; init; } = true;

    /// <summary>
    /// With <see cref="RevokeExpired"/> false, how long after being reported an expired lease that is
    /// still not revoked is reported again (etcd's <c>expiredLeaseRetryInterval</c>). From 1 ms to 1 hour.
    /// Default <see cref="DefaultExpiredReportRetryInterval"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "ExpiredReportRetryInterval").</exception>
    public TimeSpan ExpiredReportRetryInterval
    {
        get;
        init
        {
            if (value < TimeSpan.FromMilliseconds(1) || value > TimeSpan.FromHours(1))
            {
                throw new ArgumentOutOfRangeException(nameof(ExpiredReportRetryInterval), value, $"{nameof(ExpiredReportRetryInterval)} must be from 1 ms to 1 hour.");
            }

            field = value;
        }
    } = DefaultExpiredReportRetryInterval;
}
