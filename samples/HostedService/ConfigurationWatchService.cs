using System.Text;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// Keeps <see cref="StoreConfigurationProvider"/> equal to the keys under a prefix
/// (<c>StoreConfiguration:Prefix</c>, default <c>config/</c>) in this member's store: reads them
/// all, then watches from the next revision on, so no change between the read and the watch is
/// missed. A watch runs on the member's own store (followers included); if its history was
/// compacted meanwhile, it reads everything again. While the member has no leader, it retries.
/// </summary>
internal sealed class ConfigurationWatchService(
    ReplicatedStoreService member,
    StoreConfigurationProvider provider,
    IConfiguration configuration,
    DemoMetrics metrics,
    ILogger<ConfigurationWatchService> logger) : BackgroundService
{
    private static readonly TimeSpan s_retryDelay = TimeSpan.FromMilliseconds(200);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        string prefix = configuration["StoreConfiguration:Prefix"] ?? "config/";
        byte[] key = Encoding.UTF8.GetBytes(prefix);
        // Retry and restart on any failure while the host runs; the reason is logged.
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await FollowAsync(member.Store, prefix, key, stoppingToken).ConfigureAwait(false);
            }
            catch (Exception) when (stoppingToken.IsCancellationRequested)
            {
                return; // the host is stopping
            }
            catch (Exception e)
            {
                // History compacted under the watch, no leader for the first read, ...: read
                // everything again. (An exception escaping a BackgroundService would stop the host.)
                SampleLog.ConfigurationWatchRestarts(logger, member.MemberName, e.Message);
                await Task.Delay(s_retryDelay, stoppingToken).ConfigureAwait(false);
            }
        }
    }

    private async Task FollowAsync(ReplicatedStore store, string prefix, byte[] key, CancellationToken stoppingToken)
    {
        // Everything now (a linearizable read), then every change after that revision.
        var current = await store.RangeAsync(new RangeRequest { Key = key, RangeEnd = KeyRange.PrefixEnd(key) }, cancellationToken: stoppingToken).ConfigureAwait(false);
        var keys = current.Kvs.ToDictionary(kv => Suffix(kv.Key, prefix), kv => Encoding.UTF8.GetString(kv.Value.Span), StringComparer.Ordinal);
        Apply(keys, current.Header.Revision);

        var watch = new WatchRequest { Key = key, RangeEnd = KeyRange.PrefixEnd(key), StartRevision = current.Header.Revision + 1 };
        await foreach (var response in store.WatchAsync(watch, stoppingToken).ConfigureAwait(false))
        {
            foreach (var e in response.Events)
            {
                string suffix = Suffix(e.Kv.Key, prefix);
                if (e.Type == WatchEventType.Put)
                {
                    keys[suffix] = Encoding.UTF8.GetString(e.Kv.Value.Span);
                }
                else
                {
                    keys.Remove(suffix);
                }
            }

            if (response.Events.Count > 0)
            {
                Apply(keys, response.Header.Revision);
            }
        }
    }

    private void Apply(Dictionary<string, string> keys, long revision)
    {
        provider.Replace(keys);
        metrics.ConfigurationReloaded(member.MemberName);
        if (logger.IsEnabled(LogLevel.Information))
        {
            SampleLog.ConfigurationApplied(logger, member.MemberName, revision, keys.Count == 0 ? "(no keys)" : string.Join(", ", keys.Select(k => $"{k.Key}={k.Value}")));
        }
    }

    private static string Suffix(ReadOnlyMemory<byte> key, string prefix) => Encoding.UTF8.GetString(key.Span)[prefix.Length..];
}
