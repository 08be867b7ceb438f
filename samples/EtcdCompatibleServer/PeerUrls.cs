namespace EmbeddedRaft.Samples.EtcdCompatibleServer;

/// <summary>
/// Peer URLs as etcd's clients know them (http://host:port, https://host:port) and as the store's
/// TCP transport takes them (tcp://host:port, tls://host:port): the same address, another scheme.
/// </summary>
internal static class PeerUrls
{
    /// <summary>Whether etcd would accept <paramref name="url"/> as a peer URL: http(s), a host, an explicit port, no path.</summary>
    public static bool IsValid(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out Uri? uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && !uri.IsDefaultPort
        && uri.AbsolutePath == "/"
        && !url.EndsWith('/');

    public static string ToStore(string etcdUrl)
    {
        var uri = new Uri(etcdUrl);
        return $"{(uri.Scheme == Uri.UriSchemeHttps ? "tls" : "tcp")}://{uri.Authority}";
    }

    public static string ToEtcd(string storeUrl) =>
        storeUrl.StartsWith("tls://", StringComparison.OrdinalIgnoreCase) ? "https://" + storeUrl[6..]
        : storeUrl.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase) ? "http://" + storeUrl[6..]
        : storeUrl;
}
