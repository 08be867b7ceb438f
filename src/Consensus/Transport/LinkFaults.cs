namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// What an <see cref="InProcessNetwork"/> does to the messages on one directed link: drop,
/// duplicate, delay and reorder them, each decided per message from the network's seeded random
/// source. <see cref="None"/> is a perfect link (in order, exactly once, no delay).
/// </summary>
/// <remarks>
/// Faults apply to <see cref="IRaftTransport.Send"/> only; a snapshot stream is reliable (as over
/// TCP) and fails only when the link is cut or the peer stops. Each property checks its own range
/// when set and throws <see cref="ArgumentOutOfRangeException"/> whose
/// <see cref="ArgumentException.ParamName"/> is the property's name. Immutable, thread-safe to share.
/// </remarks>
public sealed record LinkFaults
{
    /// <summary>The default <see cref="ReorderDelay"/>: 10 ms.</summary>
    public static readonly TimeSpan DefaultReorderDelay = TimeSpan.FromMilliseconds(10);

    /// <summary>Creates a perfect link's faults (none).</summary>
    public LinkFaults()
    {
    }

    /// <summary>A perfect link: nothing dropped, duplicated, delayed or reordered.</summary>
    public static LinkFaults None { get; } = new();

    /// <summary>Probability, from 0 to 1, that a message is lost. Default 0.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a number from 0 to 1 (ParamName "DropRate").</exception>
    public double DropRate
    {
        get;
        init => field = CheckRate(value, nameof(DropRate));
    }

    /// <summary>Probability, from 0 to 1, that a message is delivered twice. Default 0.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a number from 0 to 1 (ParamName "DuplicateRate").</exception>
    public double DuplicateRate
    {
        get;
        init => field = CheckRate(value, nameof(DuplicateRate));
    }

    /// <summary>
    /// Probability, from 0 to 1, that a message is held back a further <see cref="ReorderDelay"/>,
    /// so that messages sent after it on the link arrive before it. Default 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a number from 0 to 1 (ParamName "ReorderRate").</exception>
    public double ReorderRate
    {
        get;
        init => field = CheckRate(value, nameof(ReorderRate));
    }

    /// <summary>
    /// Fixed latency of every message on the link, measured on the network's
    /// <see cref="InProcessNetworkOptions.TimeProvider"/>. Zero (the default) delivers during
    /// <see cref="IRaftTransport.Send"/>, on the sender's thread.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative (ParamName "Delay").</exception>
    public TimeSpan Delay
    {
        get;
        init => field = CheckDuration(value, nameof(Delay));
    }

    /// <summary>Random extra latency, uniform from zero up to this, added to <see cref="Delay"/> per message. Default zero.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative (ParamName "DelayJitter").</exception>
    public TimeSpan DelayJitter
    {
        get;
        init => field = CheckDuration(value, nameof(DelayJitter));
    }

    /// <summary>How much longer a reordered message is held (see <see cref="ReorderRate"/>). More than zero. Default <see cref="DefaultReorderDelay"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or negative (ParamName "ReorderDelay").</exception>
    public TimeSpan ReorderDelay
    {
        get;
        init
        {
            if (value <= TimeSpan.Zero)
            {
                throw new ArgumentOutOfRangeException(nameof(ReorderDelay), value, $"{nameof(ReorderDelay)} must be more than zero.");
            }

            field = value;
        }
    } = DefaultReorderDelay;

    /// <summary>True when every message on the link is delivered once, in order, with no delay.</summary>
    internal bool IsPerfect =>
        DropRate == 0 && DuplicateRate == 0 && ReorderRate == 0 && Delay == TimeSpan.Zero && DelayJitter == TimeSpan.Zero;

    private static double CheckRate(double value, string name)
    {
        if (!(value >= 0 && value <= 1))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a probability from 0 to 1.");
        }

        return value;
    }

    private static TimeSpan CheckDuration(TimeSpan value, string name)
    {
        if (value < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must not be negative.");
        }

        return value;
    }
}
