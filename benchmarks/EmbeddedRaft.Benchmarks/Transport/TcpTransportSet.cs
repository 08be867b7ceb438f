using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>
/// One <see cref="TcpTransport"/> per node id on loopback (ephemeral ports), each knowing the
/// others' addresses: what <c>cluster-load --transport tcp</c> gives the RaftNode cluster instead
/// of an InProcessNetwork.
/// </summary>
internal sealed class TcpTransportSet : IAsyncDisposable
{
    private readonly Dictionary<ulong, TcpTransport> _transports = [];

    public TcpTransportSet(IReadOnlyList<ulong> ids, TcpTransportTlsOptions? tls = null)
    {
        foreach (ulong id in ids)
        {
            // A queue as deep as the load's in-flight window, so a burst is not dropped at the sender.
            _transports[id] = new TcpTransport(new TcpTransportOptions { NodeId = id, ClusterId = 1, Tls = tls, SendQueueCapacity = 16 * 1024 });
        }

        foreach (var (id, transport) in _transports)
        {
            foreach (var (peer, other) in _transports)
            {
                if (peer != id)
                {
                    transport.SetPeerAddress(peer, other.LocalEndPoint.ToString());
                }
            }
        }
    }

    public IRaftTransport this[ulong id] => _transports[id];

    /// <summary>The three transports' counters summed: what a collapsed run needs explained (drops, reconnects, keep-alive timeouts).</summary>
    public string Summary()
    {
        var all = _transports.Values.Select(t => t.Metrics).ToList();
        long sent = all.Sum(m => m.MessagesSent), flushes = all.Sum(m => m.Flushes);
        return FormattableString.Invariant(
            $"{sent} messages sent in {flushes} flushes ({sent / Math.Max(1, flushes)} per flush), {all.Sum(m => m.MessagesReceived)} received, {all.Sum(m => m.MessagesDropped)} dropped, {all.Sum(m => m.Connects)} connects ({all.Sum(m => m.Reconnects)} reconnects), {all.Sum(m => m.KeepAliveTimeouts)} keep-alive timeouts, {all.Sum(m => m.TlsFailures)} TLS failures");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var transport in _transports.Values)
        {
            await transport.DisposeAsync();
        }
    }
}
