using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// Settings of a <see cref="TcpTransport"/>. Each property checks its own value when set and
/// throws <see cref="ArgumentOutOfRangeException"/> (or <see cref="ArgumentNullException"/>) whose
/// <see cref="ArgumentException.ParamName"/> is the property's name; rules between properties (a
/// snapshot chunk must fit in a frame) are checked when the transport is created, which throws
/// <see cref="ArgumentException"/> naming both options.
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds from
/// Microsoft.Extensions.Configuration (addresses are strings, "host:port"); vary it with
/// <c>TcpTransportOptions.Default with { NodeId = 1, ... }</c>. Thread-safe to share.
/// </remarks>
public sealed record TcpTransportOptions
{
    /// <summary>The default <see cref="MaxFrameSizeBytes"/>: 16 MiB.</summary>
    public const int DefaultMaxFrameSizeBytes = 16 * 1024 * 1024;

    /// <summary>The smallest <see cref="MaxFrameSizeBytes"/> accepted: 4 KiB.</summary>
    public const int MinMaxFrameSizeBytes = 4096;

    /// <summary>The largest <see cref="MaxFrameSizeBytes"/> accepted: 1 GiB.</summary>
    public const int MaxMaxFrameSizeBytes = 1024 * 1024 * 1024;

    /// <summary>The default <see cref="SendQueueCapacity"/>: 4,096 messages per peer.</summary>
    public const int DefaultSendQueueCapacity = 4096;

    /// <summary>The default <see cref="SnapshotChunkSizeBytes"/>: 64 KiB.</summary>
    public const int DefaultSnapshotChunkSizeBytes = 64 * 1024;

    /// <summary>The default <see cref="ReconnectMinDelay"/>: 50 ms.</summary>
    public static readonly TimeSpan DefaultReconnectMinDelay = TimeSpan.FromMilliseconds(50);

    /// <summary>The default <see cref="ReconnectMaxDelay"/>: 2 s.</summary>
    public static readonly TimeSpan DefaultReconnectMaxDelay = TimeSpan.FromSeconds(2);

    /// <summary>The default <see cref="ConnectTimeout"/>, <see cref="HandshakeTimeout"/>, <see cref="FrameTimeout"/> and <see cref="WriteTimeout"/>: 5 s.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The default <see cref="SnapshotAckTimeout"/>: 60 s.</summary>
    public static readonly TimeSpan DefaultSnapshotAckTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The default <see cref="ShutdownFlushTimeout"/>: 1 s.</summary>
    public static readonly TimeSpan DefaultShutdownFlushTimeout = TimeSpan.FromSeconds(1);

    /// <summary>The default <see cref="MaxInboundConnections"/>: 256 accepted connections at once.</summary>
    public const int DefaultMaxInboundConnections = 256;

    /// <summary>The largest <see cref="MaxInboundConnections"/> accepted: 65,536.</summary>
    public const int MaxMaxInboundConnections = 65536;

    /// <summary>The default <see cref="KeepAliveInterval"/>: 1 s.</summary>
    public static readonly TimeSpan DefaultKeepAliveInterval = TimeSpan.FromSeconds(1);

    /// <summary>The default <see cref="KeepAliveTimeout"/>: 5 s.</summary>
    public static readonly TimeSpan DefaultKeepAliveTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Creates options with every default (no node id: set <see cref="NodeId"/>).</summary>
    public TcpTransportOptions()
    {
    }

    /// <summary>Every default: listen on 127.0.0.1 on an ephemeral port, cluster id 0, no peers, no TLS, no logging.</summary>
    public static TcpTransportOptions Default { get; } = new();

    /// <summary>
    /// The id of the node this transport serves (the id it binds and sends from). Must be set: 0 is
    /// not a Raft node id and is refused when the transport is created.
    /// </summary>
    public ulong NodeId { get; init; }

    /// <summary>
    /// The cluster this node belongs to: every connection's handshake carries it, and a peer with
    /// another cluster id is refused. Any value; default 0.
    /// </summary>
    public ulong ClusterId { get; init; }

    /// <summary>
    /// Where the transport listens, "address:port" (an IP address; port 0 picks a free port, see
    /// <see cref="TcpTransport.LocalEndPoint"/>). Default "127.0.0.1:0".
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not an IP address and port (ParamName "ListenAddress").</exception>
    public string ListenAddress
    {
        get;
        init
        {
            if (value is null || !IPEndPoint.TryParse(value, out var parsed) || !value.Contains(':', StringComparison.Ordinal) || parsed.Port is < IPEndPoint.MinPort or > IPEndPoint.MaxPort)
            {
                throw new ArgumentOutOfRangeException(nameof(ListenAddress), value, $"{nameof(ListenAddress)} must be an IP address and port, such as \"127.0.0.1:7001\" or \"[::]:7001\".");
            }

            field = value;
        }
    } = "127.0.0.1:0";

    /// <summary>
    /// The peers' addresses by node id, "host:port" (a host name or an IP address). Only these peers
    /// are sent to and accepted from; change them at run time with
    /// <see cref="TcpTransport.SetPeerAddress"/> and <see cref="TcpTransport.RemovePeer"/>. Default empty.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Peers").</exception>
    /// <exception cref="ArgumentOutOfRangeException">A key is 0 or a value is not "host:port" (ParamName "Peers").</exception>
    public IReadOnlyDictionary<ulong, string> Peers
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(Peers));
            foreach (var (id, address) in value)
            {
                if (id == 0 || !TcpPeerAddress.TryParse(address, out _))
                {
                    throw new ArgumentOutOfRangeException(nameof(Peers), $"{id}={address}", $"{nameof(Peers)} maps node ids (not 0) to \"host:port\" addresses.");
                }
            }

            field = value;
        }
    } = new Dictionary<ulong, string>();

    /// <summary>
    /// Largest frame sent or accepted (header excluded): a frame carries a batch of messages or one
    /// snapshot chunk. A message larger than this is dropped (and logged); an inbound frame larger
    /// than this closes its connection. From <see cref="MinMaxFrameSizeBytes"/> to
    /// <see cref="MaxMaxFrameSizeBytes"/>; default <see cref="DefaultMaxFrameSizeBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "MaxFrameSizeBytes").</exception>
    public int MaxFrameSizeBytes
    {
        get;
        init => field = OptionChecks.InRange(value, MinMaxFrameSizeBytes, MaxMaxFrameSizeBytes, nameof(MaxFrameSizeBytes));
    } = DefaultMaxFrameSizeBytes;

    /// <summary>
    /// Messages queued per peer while they wait for the connection; when the queue is full, new
    /// messages to that peer are dropped and counted (Raft retransmits), never blocking the sender.
    /// From 1 to 1,048,576; default <see cref="DefaultSendQueueCapacity"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "SendQueueCapacity").</exception>
    public int SendQueueCapacity
    {
        get;
        init
        {
            if (value is < 1 or > 1024 * 1024)
            {
                throw new ArgumentOutOfRangeException(nameof(SendQueueCapacity), value, $"{nameof(SendQueueCapacity)} must be from 1 to 1048576.");
            }

            field = value;
        }
    } = DefaultSendQueueCapacity;

    /// <summary>
    /// Size of the chunks a snapshot is streamed in (one frame each). From 1 byte to
    /// <see cref="MaxFrameSizeBytes"/>; default <see cref="DefaultSnapshotChunkSizeBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Less than 1 (ParamName "SnapshotChunkSizeBytes").</exception>
    public int SnapshotChunkSizeBytes
    {
        get;
        init
        {
            if (value < 1)
            {
                throw new ArgumentOutOfRangeException(nameof(SnapshotChunkSizeBytes), value, $"{nameof(SnapshotChunkSizeBytes)} must be 1 or more (and at most {nameof(MaxFrameSizeBytes)}).");
            }

            field = value;
        }
    } = DefaultSnapshotChunkSizeBytes;

    /// <summary>
    /// First wait before reconnecting to a peer after a failed or lost connection; each further
    /// failure doubles it up to <see cref="ReconnectMaxDelay"/>, each wait drawn at random between
    /// half and all of it (jitter). More than zero; default <see cref="DefaultReconnectMinDelay"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "ReconnectMinDelay").</exception>
    public TimeSpan ReconnectMinDelay
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(ReconnectMinDelay));
    } = DefaultReconnectMinDelay;

    /// <summary>
    /// Longest wait between reconnection attempts. At least <see cref="ReconnectMinDelay"/> (checked
    /// when the transport is created); default <see cref="DefaultReconnectMaxDelay"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "ReconnectMaxDelay").</exception>
    public TimeSpan ReconnectMaxDelay
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(ReconnectMaxDelay));
    } = DefaultReconnectMaxDelay;

    /// <summary>Longest a TCP connect may take. More than zero; default 5 s.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "ConnectTimeout").</exception>
    public TimeSpan ConnectTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(ConnectTimeout));
    } = DefaultTimeout;

    /// <summary>
    /// Longest the TLS handshake and the hello exchange of a new connection may take, on either
    /// side; a peer that stays silent longer is dropped. More than zero; default 5 s.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "HandshakeTimeout").</exception>
    public TimeSpan HandshakeTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(HandshakeTimeout));
    } = DefaultTimeout;

    /// <summary>
    /// Longest an inbound frame may stay incomplete: a peer that sends part of a frame and stalls
    /// has its connection closed. More than zero; default 5 s.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "FrameTimeout").</exception>
    public TimeSpan FrameTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(FrameTimeout));
    } = DefaultTimeout;

    /// <summary>
    /// Longest one flush to a peer may block (its receive window full): past it the connection is
    /// closed and opened again. More than zero; default 5 s.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "WriteTimeout").</exception>
    public TimeSpan WriteTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(WriteTimeout));
    } = DefaultTimeout;

    /// <summary>
    /// Longest a snapshot sender waits, after the last chunk, for the receiver to say it saved the
    /// data durably. More than zero; default <see cref="DefaultSnapshotAckTimeout"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "SnapshotAckTimeout").</exception>
    public TimeSpan SnapshotAckTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(SnapshotAckTimeout));
    } = DefaultSnapshotAckTimeout;

    /// <summary>
    /// How long <see cref="TcpTransport.DisposeAsync"/> lets the peer connections flush what is
    /// queued before it closes them. Zero or more; default <see cref="DefaultShutdownFlushTimeout"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative (ParamName "ShutdownFlushTimeout").</exception>
    public TimeSpan ShutdownFlushTimeout
    {
        get;
        init
        {
            if (value < TimeSpan.Zero)
            {
                throw new ArgumentOutOfRangeException(nameof(ShutdownFlushTimeout), value, $"{nameof(ShutdownFlushTimeout)} must be zero or more.");
            }

            field = value;
        }
    } = DefaultShutdownFlushTimeout;

    /// <summary>
    /// Most accepted connections open at once (message and snapshot connections from peers, and
    /// connections still in their TLS or hello handshake). A connection over the limit is closed as
    /// soon as it is accepted, before any TLS work, and counted in
    /// <c>embeddedraft.transport.connections_refused</c>; the first of a run of refusals is logged.
    /// Each peer needs one message connection plus one per snapshot in flight, so keep it well above
    /// the cluster's size; a connection that never completes its handshake holds its place for at
    /// most <see cref="HandshakeTimeout"/>. From 1 to <see cref="MaxMaxInboundConnections"/>; default
    /// <see cref="DefaultMaxInboundConnections"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "MaxInboundConnections").</exception>
    public int MaxInboundConnections
    {
        get;
        init => field = OptionChecks.InRange(value, 1, MaxMaxInboundConnections, nameof(MaxInboundConnections));
    } = DefaultMaxInboundConnections;

    /// <summary>
    /// How often the sending side of a message connection sends a keep-alive frame, which the
    /// receiving side answers; this runs whether or not messages flow, so both sides always hear from
    /// each other at this interval. More than zero; default <see cref="DefaultKeepAliveInterval"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "KeepAliveInterval").</exception>
    public TimeSpan KeepAliveInterval
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(KeepAliveInterval));
    } = DefaultKeepAliveInterval;

    /// <summary>
    /// How long a message connection may stay silent before it is taken for dead and closed: the
    /// sending side when no keep-alive answer arrives, the receiving side when no frame arrives (a
    /// crashed host, a cut or black-holed path that TCP alone would not notice for minutes). The
    /// sending side then reports the peer unreachable and reconnects with backoff. More than
    /// <see cref="KeepAliveInterval"/> (checked when the transport is created); default
    /// <see cref="DefaultKeepAliveTimeout"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Zero or less (ParamName "KeepAliveTimeout").</exception>
    public TimeSpan KeepAliveTimeout
    {
        get;
        init => field = OptionChecks.Positive(value, nameof(KeepAliveTimeout));
    } = DefaultKeepAliveTimeout;

    /// <summary>TLS for every connection, in both directions (mutual authentication); null (the default) means plain TCP.</summary>
    public TcpTransportTlsOptions? Tls { get; init; }

    /// <summary>
    /// The clock of reconnection backoff. Timeouts of socket operations use real time. Default
    /// <see cref="TimeProvider.System"/>; null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "TimeProvider").</exception>
    public TimeProvider TimeProvider
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(TimeProvider));
    } = TimeProvider.System;

    /// <summary>
    /// Where connection state changes are logged (connected, lost, refused handshakes at
    /// <see cref="LogLevel.Information"/> and <see cref="LogLevel.Warning"/>; a bad frame once per
    /// connection at <see cref="LogLevel.Warning"/>). Default: nowhere; null is refused.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Logger").</exception>
    public ILogger Logger
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Logger));
    } = NullLogger.Instance;

    /// <summary>Checks the rules between options; called by the transport's constructor.</summary>
    /// <exception cref="ArgumentException">A rule between options is broken (the message names both).</exception>
    internal void Validate()
    {
        if (NodeId == 0)
        {
            throw new ArgumentException($"{nameof(NodeId)} must be set to this node's id (not 0).", nameof(NodeId));
        }

        if (SnapshotChunkSizeBytes > MaxFrameSizeBytes)
        {
            throw new ArgumentException($"{nameof(SnapshotChunkSizeBytes)} ({SnapshotChunkSizeBytes}) must be at most {nameof(MaxFrameSizeBytes)} ({MaxFrameSizeBytes}).", nameof(SnapshotChunkSizeBytes));
        }

        if (ReconnectMaxDelay < ReconnectMinDelay)
        {
            throw new ArgumentException($"{nameof(ReconnectMaxDelay)} ({ReconnectMaxDelay}) must be at least {nameof(ReconnectMinDelay)} ({ReconnectMinDelay}).", nameof(ReconnectMaxDelay));
        }

        if (KeepAliveTimeout <= KeepAliveInterval)
        {
            throw new ArgumentException($"{nameof(KeepAliveTimeout)} ({KeepAliveTimeout}) must be longer than {nameof(KeepAliveInterval)} ({KeepAliveInterval}).", nameof(KeepAliveTimeout));
        }

        if (Peers.ContainsKey(NodeId))
        {
            throw new ArgumentException($"{nameof(Peers)} lists this node's own id {NodeId} ({nameof(NodeId)}); list only the other nodes.", nameof(Peers));
        }
    }

}
