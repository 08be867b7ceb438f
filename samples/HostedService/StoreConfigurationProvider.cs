using Microsoft.Extensions.Configuration;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// Configuration read from the replicated store: the key <c>config/Report/Title</c> becomes the
/// configuration key <c>Report:Title</c>. <see cref="ConfigurationWatchService"/> fills it from a
/// range and keeps it current from a watch; each change raises the configuration's reload token, so
/// <c>IOptionsMonitor&lt;T&gt;</c> values bound to it change live, on every member.
/// </summary>
/// <remarks>
/// Added to the host's configuration before the host is built (empty until the store runs; the
/// sources added before it, such as appsettings.json, give the defaults until then). Thread-safe:
/// the data is replaced whole (copy on write), never changed in place under a reader.
/// </remarks>
internal sealed class StoreConfigurationProvider : ConfigurationProvider, IConfigurationSource
{
    /// <summary>Replaces the whole configuration (store key suffix to value) and signals the change.</summary>
    public void Replace(IReadOnlyDictionary<string, string> storeKeys)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (suffix, value) in storeKeys)
        {
            data[suffix.Replace('/', ':')] = value;
        }

        Data = data;
        OnReload();
    }

    public IConfigurationProvider Build(IConfigurationBuilder builder) => this;
}
