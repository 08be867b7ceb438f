namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// Settings of the etcd-compatible server, bound from configuration (appsettings.json beside the
/// program, environment variables prefixed <c>ETCDSERVER_</c>, command-line <c>--Name=value</c>).
/// Each property checks its own value when set (<see cref="ArgumentOutOfRangeException"/> naming
/// the property and its allowed range).
/// </summary>
internal sealed record EtcdServerOptions
{
    /// <summary>etcd's default request size limit (its --max-request-bytes): 1.5 MiB.</summary>
    public const int DefaultMaxRequestBytes = 1536 * 1024;

    public static EtcdServerOptions Default { get; } = new();

    /// <summary>How many members the one-process cluster has: 1 to 7. Default 3.</summary>
    public int Members
    {
        get;
        init => field = value is >= 1 and <= 7 ? value : throw new ArgumentOutOfRangeException(nameof(Members), value, $"{nameof(Members)} must be from 1 to 7.");
    } = 3;

    /// <summary>The address every endpoint listens on. Default 127.0.0.1.</summary>
    public string Host
    {
        get;
        init => field = System.Net.IPAddress.TryParse(value, out _) ? value : throw new ArgumentOutOfRangeException(nameof(Host), value, $"{nameof(Host)} must be an IP address.");
    } = "127.0.0.1";

    /// <summary>
    /// Member N's client (gRPC) port is this + N - 1: 2379, 2380, 2381 by default (etcd's client
    /// port first, so a bare etcdctl talks to member 1). 0 = free ports picked by the system.
    /// </summary>
    public int FirstClientPort
    {
        get;
        init => field = value is >= 0 and <= 65535 - 7 ? value : throw new ArgumentOutOfRangeException(nameof(FirstClientPort), value, $"{nameof(FirstClientPort)} must be from 0 to {65535 - 7}.");
    } = 2379;

    /// <summary>
    /// Member N's Raft (TCP transport) port is this + N - 1: 12380 to 12382 by default (etcd's peer
    /// port, 2380, is member 2's client port here). 0 = free ports picked by the system (then a
    /// restart on the same data directory cannot find its peers again: use fixed ports with
    /// <see cref="DataDirectory"/>).
    /// </summary>
    public int FirstPeerPort
    {
        get;
        init => field = value is >= 0 and <= 65535 - 7 ? value : throw new ArgumentOutOfRangeException(nameof(FirstPeerPort), value, $"{nameof(FirstPeerPort)} must be from 0 to {65535 - 7}.");
    } = 12380;

    /// <summary>
    /// Where the members keep their data (member N under mN/); restarting on it resumes the
    /// cluster. Null (the default) = a temporary directory, deleted when the server stops.
    /// </summary>
    public string? DataDirectory { get; init; }

    /// <summary>
    /// The largest request accepted and the size above which a watch response with the fragment
    /// flag is split: etcd's --max-request-bytes. 1 KiB to 64 MiB; default 1.5 MiB.
    /// </summary>
    public int MaxRequestBytes
    {
        get;
        init => field = value is >= 1024 and <= 64 * 1024 * 1024 ? value : throw new ArgumentOutOfRangeException(nameof(MaxRequestBytes), value, $"{nameof(MaxRequestBytes)} must be from 1 KiB to 64 MiB.");
    } = DefaultMaxRequestBytes;

    /// <summary>
    /// Applied entries between two Raft snapshots of a member's store (etcd's --snapshot-count,
    /// default 100,000 as etcd 3.4's). Each snapshot writes the member's whole store out, so it is
    /// taken by count only (no log-size rule), as etcd does. 1 to 100 million.
    /// </summary>
    public ulong SnapshotCount
    {
        get;
        init => field = value is >= 1 and <= 100_000_000 ? value : throw new ArgumentOutOfRangeException(nameof(SnapshotCount), value, $"{nameof(SnapshotCount)} must be from 1 to 100,000,000.");
    } = 100_000;

    /// <summary>How often a watch created with progress_notify gets a progress response while idle (etcd: 10 minutes). 1 ms to 1 day.</summary>
    public TimeSpan WatchProgressInterval
    {
        get;
        init => field = value >= TimeSpan.FromMilliseconds(1) && value <= TimeSpan.FromDays(1) ? value : throw new ArgumentOutOfRangeException(nameof(WatchProgressInterval), value, $"{nameof(WatchProgressInterval)} must be from 1 ms to 1 day.");
    } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// A PEM certificate (chain) file: the endpoints then serve TLS instead of plain HTTP/2 (etcd's
    /// --cert-file). Requires <see cref="TlsKeyPath"/>.
    /// </summary>
    public string? TlsCertificatePath { get; init; }

    /// <summary>The PEM private key of <see cref="TlsCertificatePath"/> (etcd's --key-file).</summary>
    public string? TlsKeyPath { get; init; }

    /// <summary>Rules between properties; the server calls it before starting.</summary>
    /// <exception cref="ArgumentException">Only one of the two TLS paths is set.</exception>
    internal void Validate()
    {
        if ((TlsCertificatePath is null) != (TlsKeyPath is null))
        {
            throw new ArgumentException($"{nameof(TlsCertificatePath)} and {nameof(TlsKeyPath)} must be set together (TLS) or both left unset (plain HTTP/2).");
        }
    }
}
