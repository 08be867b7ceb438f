// HostedService: members of a replicated store embedded in Generic Hosts, as a .NET service would
// run one. With no arguments it starts three hosts in this process (one member each, over the
// in-process network, data in a temporary directory deleted at the end) and runs a scripted demo of
// what the store is for inside a service:
//   - configuration watched live: keys under config/ in the store override appsettings.json and
//     reach every member's IOptionsMonitor<ReportSettings> (StoreConfigurationProvider);
//   - leader election of a background job: only the member holding the election key runs it, and
//     another takes over when that member's host stops (ElectedJobService);
//   - a lease-based lock: released by revoking its lease, and freed by the cluster when its holder
//     stops renewing (LeaseLock).
// Logs go through ILogger (console), metrics through OpenTelemetry (console exporter, at the end).
//
//   dotnet run -c Release --project samples/HostedService            the demo
//   dotnet run -c Release --project samples/HostedService -- --short  the same, quicker (CI)
//
// Exit code 0 when every check passed, 1 otherwise, 2 on bad arguments.
using System.Diagnostics;
using System.Text;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.Samples.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

bool isShort = Environment.GetEnvironmentVariable("SAMPLE_SHORT") == "1";
foreach (string arg in args)
{
    if (arg != "--short")
    {
        Console.Error.WriteLine($"Unknown argument '{arg}'. Usage: [--short] (environment: SAMPLE_SHORT=1).");
        return 2;
    }

    isShort = true;
}

var patience = TimeSpan.FromSeconds(20);
int jobRunsToWatch = isShort ? 3 : 10;
var checks = new List<(string Name, bool Passed, string Detail)>();
bool Check(string name, bool passed, string detail)
{
    checks.Add((name, passed, detail));
    Console.WriteLine($"   {(passed ? "pass" : "FAIL")}: {name} ({detail})");
    return passed;
}

var root = Directory.CreateTempSubdirectory("embeddedraft-hosted-");
using var network = new InProcessNetwork();
var hosts = new Dictionary<ulong, IHost>();
try
{
    // 1. Three hosts, one member each (member 1's host exports the metrics).
    Step("1. Three Generic Hosts start, each embedding one member of the replicated store");
    foreach (ulong id in new ulong[] { 1, 2, 3 })
    {
        hosts[id] = MemberHost.Build(id, Path.Combine(root.FullName, $"member-{id}"), network.CreateTransport(id), exportMetrics: id == 1);
    }

    await Task.WhenAll(hosts.Values.Select(h => h.StartAsync()));
    bool elected = await WaitUntilAsync(() => hosts.Values.All(h => Store(h).Status.LeaderId != 0), patience);
    Check("the members elect a Raft leader", elected, $"leader: member-{Store(hosts[1]).Status.LeaderId}");

    // 2. Configuration in the store, watched live by every member.
    Step("2. A setting written to the store reaches every member's IOptionsMonitor<ReportSettings>");
    var titles = new Dictionary<ulong, string>();
    foreach (var (id, host) in hosts)
    {
        Console.WriteLine($"   member-{id} starts with Title = '{Monitor(host).CurrentValue.Title}' (appsettings.json, or the environment: Report__Title)");
        Monitor(host).OnChange(settings => { lock (titles) { titles[id] = settings.Title; } });
    }

    string title = $"Nightly report ({DateTime.UtcNow:HH:mm:ss})";
    await Store(hosts[3]).PutAsync(new PutRequest { Key = Utf8("config/Report/Title"), Value = Utf8(title) });
    await Store(hosts[3]).PutAsync(new PutRequest { Key = Utf8("config/Report/IntervalMilliseconds"), Value = Utf8(isShort ? "50" : "200") });
    bool configured = await WaitUntilAsync(() => hosts.Values.All(h => Monitor(h).CurrentValue.Title == title), patience);
    Check("every member sees the new title through IOptionsMonitor", configured,
        string.Join(", ", hosts.Select(h => $"member-{h.Key}: '{Monitor(h.Value).CurrentValue.Title}'")));
    lock (titles)
    {
        Check("OnChange listeners were called on every member", titles.Count == hosts.Count && titles.Values.All(t => t == title), $"{titles.Count} of {hosts.Count} members");
    }

    // 3. Leader election of the report job; the leader's host stops and another member takes over.
    Step("3. Only the member holding the election key runs the report job; when its host stops, another takes over");
    long startRevision = (await Store(hosts[1]).RangeAsync(new RangeRequest { Key = Utf8("election/"), CountOnly = true })).Header.Revision;
    IHost? jobHost = null;
    await WaitUntilAsync(() => (jobHost = hosts.Values.SingleOrDefault(h => Job(h).IsLeader && Job(h).Runs >= jobRunsToWatch)) is not null, patience);
    if (Check("one member runs the job", jobHost is not null, string.Join(", ", hosts.Select(h => $"member-{h.Key}: {Job(h.Value).Runs} runs"))))
    {
        ulong stoppedId = hosts.Single(h => h.Value == jobHost).Key;
        Console.WriteLine($"   member-{stoppedId} runs it; stopping its host (the job resigns: its lease is revoked)");
        var clock = Stopwatch.StartNew();
        await jobHost!.StopAsync();
        jobHost.Dispose();
        hosts.Remove(stoppedId);

        IHost? successor = null;
        await WaitUntilAsync(() => (successor = hosts.Values.SingleOrDefault(h => Job(h).IsLeader && Job(h).Runs >= jobRunsToWatch)) is not null, patience);
        Check("another member takes the job over", successor is not null, $"after {clock.ElapsedMilliseconds:N0} ms; " + string.Join(", ", hosts.Select(h => $"member-{h.Key}: {Job(h.Value).Runs} runs")));

        // Replay the store's history: every report must have been written by the member holding
        // the election key at that revision.
        var (reports, violations) = await CheckJobHistoryAsync(Store(hosts.Values.First()), startRevision);
        Check("every report was written by the election's winner of the moment", reports > 0 && violations.Count == 0,
            violations.Count == 0 ? $"{reports} reports in the history, each by the key's holder" : violations[0]);
    }

    // 4. A lease-based lock between the two remaining members.
    Step("4. A lease lock: released by revoking its lease, freed by the cluster when its holder stops renewing");
    var (first, second) = (hosts.First(), hosts.Skip(1).First());
    string firstName = $"member-{first.Key}", secondName = $"member-{second.Key}";
    var logger = first.Value.Services.GetRequiredService<ILoggerFactory>().CreateLogger("LeaseLockDemo");
    const string lockKey = "locks/nightly-export";
    const long lockTtlSeconds = 2;

    var held = await LeaseLock.AcquireAsync(Store(first.Value), lockKey, firstName, lockTtlSeconds, logger, CancellationToken.None);
    var waiting = LeaseLock.AcquireAsync(Store(second.Value), lockKey, secondName, lockTtlSeconds, logger, CancellationToken.None);
    Check($"{firstName} holds the lock and {secondName} waits", await HolderAsync(Store(second.Value), lockKey) == firstName && !waiting.IsCompleted,
        $"holder: {await HolderAsync(Store(second.Value), lockKey)}");

    await held.DisposeAsync(); // release: revoke the lease, which deletes the key
    var handedOver = await Task.WhenAny(waiting, Task.Delay(patience)) == waiting;
    Check($"{secondName} gets the lock when {firstName} releases it", handedOver && await HolderAsync(Store(first.Value), lockKey) == secondName,
        $"holder: {await HolderAsync(Store(first.Value), lockKey)}");

    if (handedOver)
    {
        var frozen = await waiting;
        var clock = Stopwatch.StartNew();
        frozen.StopRenewing(); // as if its process froze: the lease runs out, the leader revokes it
        Console.WriteLine($"   {secondName} stops renewing its lease ({lockTtlSeconds} s TTL); {firstName} asks for the lock again");
        var retaken = LeaseLock.AcquireAsync(Store(first.Value), lockKey, firstName, lockTtlSeconds, logger, CancellationToken.None);
        bool expired = await Task.WhenAny(retaken, Task.Delay(patience)) == retaken;
        Check($"the cluster expires {secondName}'s lease and {firstName} gets the lock", expired && await HolderAsync(Store(second.Value), lockKey) == firstName,
            $"after {clock.ElapsedMilliseconds:N0} ms; holder: {await HolderAsync(Store(second.Value), lockKey)}");
        if (expired)
        {
            await (await retaken).DisposeAsync();
        }

        await frozen.DisposeAsync(); // its lease is gone already: nothing to revoke
    }
}
catch (Exception e)
{
    Check("the demo ran to its end", false, $"{e.GetType().Name}: {e.Message}");
}
finally
{
    Step("5. The hosts stop (member 1's host prints its metrics as it stops, if it still runs)");
    // All at once: stopped one by one, the last members would lose their quorum before their
    // job could resign (revoking a lease is a write), and wait for it in vain.
    await Task.WhenAll(hosts.Values.Select(host => host.StopAsync()));
    foreach (var host in hosts.Values)
    {
        host.Dispose();
    }

    root.Delete(recursive: true);
}

var failed = checks.Where(c => !c.Passed).Select(c => c.Name).ToList();
Console.WriteLine(failed.Count == 0
    ? $"Every check passed ({checks.Count})."
    : $"{failed.Count} of {checks.Count} checks failed: {string.Join("; ", failed)}.");
return failed.Count == 0 ? 0 : 1;

static void Step(string text) => Console.WriteLine($"{Environment.NewLine}== {text}");

static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

static ReplicatedStore Store(IHost host) => host.Services.GetRequiredService<ReplicatedStoreService>().Store;

static IOptionsMonitor<ReportSettings> Monitor(IHost host) => host.Services.GetRequiredService<IOptionsMonitor<ReportSettings>>();

static ElectedJobService Job(IHost host) => host.Services.GetRequiredService<ElectedJobService>();

static async Task<string?> HolderAsync(ReplicatedStore store, string key)
{
    var read = await store.RangeAsync(new RangeRequest { Key = Utf8(key) });
    return read.Kvs.Count == 0 ? null : Encoding.UTF8.GetString(read.Kvs[0].Value.Span);
}

// Polls until the condition holds or the limit passes (a demo may poll; it shows, it does not time).
static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan limit)
{
    var clock = Stopwatch.StartNew();
    while (!condition())
    {
        if (clock.Elapsed > limit)
        {
            return false;
        }

        await Task.Delay(25);
    }

    return true;
}

// Watches the election key and the report key from `fromRevision` up to now, and checks that each
// report names the member whose election key existed at that revision.
static async Task<(int Reports, List<string> Violations)> CheckJobHistoryAsync(ReplicatedStore store, long fromRevision)
{
    long now = (await store.RangeAsync(new RangeRequest { Key = Utf8(ElectedJobService.LastRunKey), CountOnly = true })).Header.Revision;
    var violations = new List<string>();
    int reports = 0;
    // Who held the election at the start (it may have been won before): read at that revision.
    var atStart = await store.RangeAsync(new RangeRequest { Key = Utf8("election/"), RangeEnd = KeyRange.PrefixEnd(Utf8("election/")), Revision = fromRevision });
    string? holder = atStart.Kvs.Count == 0 ? null : Encoding.UTF8.GetString(atStart.Kvs[0].Value.Span);
    using var stop = new CancellationTokenSource();
    // One watch over [election/, jobs/ + 1): both keys, in revision order.
    var watch = new WatchRequest { Key = Utf8("election/"), RangeEnd = KeyRange.PrefixEnd(Utf8("jobs/")), StartRevision = fromRevision + 1 };
    await foreach (var response in store.WatchAsync(watch, stop.Token))
    {
        foreach (var e in response.Events)
        {
            string key = Encoding.UTF8.GetString(e.Kv.Key.Span);
            string value = Encoding.UTF8.GetString(e.Kv.Value.Span);
            if (key.StartsWith("election/", StringComparison.Ordinal))
            {
                holder = e.Type == WatchEventType.Put ? value : null;
            }
            else if (key == ElectedJobService.LastRunKey)
            {
                reports++;
                string runner = value[..value.IndexOf(' ', StringComparison.Ordinal)];
                if (runner != holder)
                {
                    violations.Add($"report '{value}' at revision {e.Kv.ModRevision} while the election key was held by {holder ?? "nobody"}");
                }
            }
        }

        if (response.Header.Revision >= now)
        {
            break;
        }
    }

    return (reports, violations);
}
