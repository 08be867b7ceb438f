namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Settings of an <see cref="MvccStore"/>'s watches (<see cref="MvccStoreOptions.Watch"/>). Each
/// property checks its own range when set and throws <see cref="ArgumentOutOfRangeException"/> whose
/// <see cref="ArgumentException.ParamName"/> is the property's name.
/// </summary>
/// <remarks>An immutable record with a parameterless constructor and <c>init</c> accessors (binds from configuration). Thread-safe to share.</remarks>
public sealed record WatchOptions
{
    /// <summary>The default <see cref="MaxBufferedEvents"/>: 1,024 events.</summary>
    public const int DefaultMaxBufferedEvents = 1024;

    /// <summary>The largest <see cref="MaxBufferedEvents"/> accepted.</summary>
    public const int MaxMaxBufferedEvents = 1_000_000;

    /// <summary>The default <see cref="ProgressInterval"/>: 10 minutes, as etcd's <c>--experimental-watch-progress-notify-interval</c>.</summary>
    public static readonly TimeSpan DefaultProgressInterval = TimeSpan.FromMinutes(10);

    /// <summary>The shortest <see cref="ProgressInterval"/> accepted: 1 ms.</summary>
    public static readonly TimeSpan MinProgressInterval = TimeSpan.FromMilliseconds(1);

    /// <summary>The longest <see cref="ProgressInterval"/> accepted: 1 day.</summary>
    public static readonly TimeSpan MaxProgressInterval = TimeSpan.FromDays(1);

    /// <summary>Creates options with every default.</summary>
    public WatchOptions()
    {
    }

    /// <summary>Every default.</summary>
    public static WatchOptions Default { get; } = new();

    /// <summary>
    /// Most live events one watcher holds that its consumer has not taken yet, from 1 to
    /// <see cref="MaxMaxBufferedEvents"/> (a revision with more events than this is still delivered
    /// whole, alone). When a revision does not fit, the writer does not wait and drops nothing: the
    /// watcher leaves the live path and its consumer reads the missed revisions from the store's
    /// history, then rejoins. A committed batch handed to a range watch whole (a synced store with a
    /// few range watches and no other) counts every change it holds, in the range or not: it is
    /// handed over whole only when that fits. This bounds only the live events waiting for a lagging
    /// consumer, not the responses it gets: whatever this is, it reads the missed revisions from
    /// history in responses of up to 256 events and 1 MiB of keys and values (whole revisions; a
    /// larger revision alone), as it takes its live events in responses of up to 256 events, so a
    /// small buffer (1, 16) costs a lagging watch no more responses or store reads to catch up.
    /// Default <see cref="DefaultMaxBufferedEvents"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "MaxBufferedEvents").</exception>
    public int MaxBufferedEvents
    {
        get;
        init => field = OptionChecks.InRange(value, 1, MaxMaxBufferedEvents, nameof(MaxBufferedEvents));
    } = DefaultMaxBufferedEvents;

    /// <summary>
    /// How often a watch with <see cref="WatchRequest.ProgressNotify"/> that delivered nothing since
    /// the last tick gets a progress notification, from <see cref="MinProgressInterval"/> to
    /// <see cref="MaxProgressInterval"/>. Default <see cref="DefaultProgressInterval"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "ProgressInterval").</exception>
    public TimeSpan ProgressInterval
    {
        get;
        init
        {
            if (value < MinProgressInterval || value > MaxProgressInterval)
            {
                throw new ArgumentOutOfRangeException(nameof(ProgressInterval), value, $"{nameof(ProgressInterval)} must be from {MinProgressInterval} to {MaxProgressInterval}.");
            }

            field = value;
        }
    } = DefaultProgressInterval;

    /// <summary>The clock that drives periodic progress notifications. Default <see cref="TimeProvider.System"/>.</summary>
    /// <exception cref="ArgumentNullException">Set to null.</exception>
    public TimeProvider TimeProvider
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(TimeProvider));
    } = TimeProvider.System;
}
