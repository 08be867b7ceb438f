using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using Grpc.Core;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>One open Watch stream of a client, read with a bounded wait per response.</summary>
internal sealed class WatchCall : IDisposable
{
    private static readonly TimeSpan s_responseLimit = TimeSpan.FromSeconds(30);

    private readonly AsyncDuplexStreamingCall<WatchRequest, WatchResponse> _call;

    public WatchCall(EtcdClients clients)
    {
        _call = clients.Watch.Watch();
    }

    public Task SendAsync(WatchRequest request) => _call.RequestStream.WriteAsync(request);

    public Task CreateAsync(WatchCreateRequest create) => SendAsync(new WatchRequest { CreateRequest = create });

    /// <summary>Creates a watch and returns its id from the "created" response.</summary>
    public async Task<long> CreateAndConfirmAsync(WatchCreateRequest create)
    {
        await CreateAsync(create);
        WatchResponse created = await NextAsync();
        Assert.That(created.Created, Is.True, $"expected the created response, got {created}");
        Assert.That(created.Canceled, Is.False, created.CancelReason);
        return created.WatchId;
    }

    /// <summary>The next response; fails the test when none comes within 30 s.</summary>
    public async Task<WatchResponse> NextAsync()
    {
        using var limit = new CancellationTokenSource(s_responseLimit);
        try
        {
            Assert.That(await _call.ResponseStream.MoveNext(limit.Token), Is.True, "the watch stream ended");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && limit.IsCancellationRequested)
        {
            Assert.Fail($"no watch response within {s_responseLimit.TotalSeconds} s");
        }

        return _call.ResponseStream.Current;
    }

    /// <summary>Responses until <paramref name="done"/> says the collected events are complete.</summary>
    public async Task<List<WatchResponse>> ReadUntilAsync(Func<List<WatchResponse>, bool> done)
    {
        var responses = new List<WatchResponse>();
        while (!done(responses))
        {
            responses.Add(await NextAsync());
        }

        return responses;
    }

    public void Dispose() => _call.Dispose();
}
