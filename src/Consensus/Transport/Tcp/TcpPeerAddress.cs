using System.Globalization;
using System.Net;

namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>Parses "host:port" peer addresses (an IP address, "[v6]:port", or a DNS name) into endpoints.</summary>
internal static class TcpPeerAddress
{
    public static bool TryParse(string? address, out EndPoint endPoint)
    {
        endPoint = null!;
        if (string.IsNullOrWhiteSpace(address))
        {
            return false;
        }

        if (IPEndPoint.TryParse(address, out var ip) && address.Contains(':', StringComparison.Ordinal) && ip.Port > 0)
        {
            endPoint = ip;
            return true;
        }

        int colon = address.LastIndexOf(':');
        if (colon <= 0 || colon == address.Length - 1)
        {
            return false;
        }

        string host = address[..colon];
        if (!int.TryParse(address.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > IPEndPoint.MaxPort)
        {
            return false;
        }

        if (Uri.CheckHostName(host) is UriHostNameType.Unknown or UriHostNameType.Basic)
        {
            return false;
        }

        endPoint = new DnsEndPoint(host, port);
        return true;
    }

    public static EndPoint Parse(string address, string parameterName) =>
        TryParse(address, out var endPoint)
            ? endPoint
            : throw new ArgumentException($"'{address}' is not a \"host:port\" address.", parameterName);

    /// <summary>The host part, for TLS server name indication.</summary>
    public static string Host(EndPoint endPoint) => endPoint switch
    {
        DnsEndPoint dns => dns.Host,
        IPEndPoint ip => ip.Address.ToString(),
        _ => endPoint.ToString() ?? "peer",
    };
}
