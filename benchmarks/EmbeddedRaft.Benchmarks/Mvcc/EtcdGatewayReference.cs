using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using EmbeddedRaft.Benchmarks.BTree;

namespace EmbeddedRaft.Benchmarks.Mvcc;

/// <summary>
/// The peer figure for MvccStore: a real etcd 3.4 (Debian's etcd-server) on this machine doing the
/// same puts and single-key ranges through its JSON gateway (POST /v3/kv/put and /v3/kv/range over
/// HTTP/1.1 on localhost), 16-byte keys and 100-byte values. It measures etcd as a client sees it
/// (HTTP, JSON, gRPC gateway, Raft, WAL fsync, bbolt), not etcd's storage alone, so it says how an
/// embedded MvccStore compares with running etcd beside the service. 100,000 keys rather than
/// 1,000,000 so an iteration stays within a minute. Needs an etcd started by hand on a fresh data
/// directory, at ETCD_ENDPOINT (default http://127.0.0.1:2379); see docs/benchmarks.md.
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 3, invocationCount: 1)]
public class EtcdGatewayReference
{
    private const int Keys = 100_000;
    private const int ReadsPerInvoke = 20_000;

    /// <summary>Requests in flight for the puts (HTTP connections are pooled; etcd batches the
    /// proposals of concurrent requests into one Raft entry batch and one WAL fsync).</summary>
    private const int PutsInFlight = 256;

    private HttpClient _http = null!;
    private string[] _keys = null!;
    private string _value = null!;
    private int[] _reads = null!;
    private int _round;

    [GlobalSetup]
    public void Connect()
    {
        var endpoint = new Uri(Environment.GetEnvironmentVariable("ETCD_ENDPOINT") ?? "http://127.0.0.1:2379");
        _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = PutsInFlight }) { BaseAddress = endpoint };
        byte[] keys = Workload.Keys(Keys);
        _keys = Enumerable.Range(0, Keys).Select(i => Convert.ToBase64String(keys, i * MvccWorkload.KeySizeBytes, MvccWorkload.KeySizeBytes)).ToArray();
        _value = Convert.ToBase64String(Workload.Value());
        _reads = Workload.Shuffled(Keys, seed: 42)[..ReadsPerInvoke];
        PutAllAsync().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Disconnect() => _http.Dispose();

    /// <summary>Every key put once more (a new revision each), <see cref="PutsInFlight"/> in flight. Per put.</summary>
    [Benchmark(OperationsPerInvoke = Keys)]
    public Task Puts() => PutAllAsync();

    /// <summary>Single-key ranges one after another (linearizable, etcd's default). Per range.</summary>
    [Benchmark(OperationsPerInvoke = ReadsPerInvoke)]
    public async Task<long> SingleKeyRanges()
    {
        long bytes = 0;
        foreach (int index in _reads)
        {
            bytes += (await PostAsync("range", $$"""{"key":"{{_keys[index]}}"}""").ConfigureAwait(false)).Length;
        }

        return bytes;
    }

    private Task PutAllAsync()
    {
        _round++;
        return MvccWorkload.RunWindowedAsync(Keys, PutsInFlight, i => PostAsync("put", $$"""{"key":"{{_keys[i]}}","value":"{{_value}}"}"""));
    }

    private async Task<string> PostAsync(string operation, string body)
    {
        using var content = new StringContent(body, Encoding.UTF8, "application/json");
        using HttpResponseMessage response = await _http.PostAsync(new Uri($"/v3/kv/{operation}", UriKind.Relative), content).ConfigureAwait(false);
        string text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        return response.IsSuccessStatusCode
            ? text
            : throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture, $"etcd refused a {operation} in round {_round}: {text}"));
    }
}
