using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// This process's member of the replicated store, run for as long as the host runs. Registered
/// before the services that use it: the host starts hosted services in order and waits for each
/// <see cref="StartAsync"/>, so <see cref="Store"/> is ready when theirs run, and stops them in
/// reverse order, so the store is disposed after they stopped using it.
/// </summary>
/// <remarks>
/// Options come from the configuration section <c>Member</c>, bound onto
/// <see cref="ReplicatedStoreOptions"/> (see appsettings.json); the store logs through the host's
/// <see cref="ILoggerFactory"/>. The transport is whatever the host registered as
/// <see cref="IRaftTransport"/>: the in-process network in this demo, a <c>TcpTransport</c> across machines.
/// </remarks>
internal sealed class ReplicatedStoreService(
    IOptions<ReplicatedStoreOptions> options,
    IRaftTransport transport,
    ILoggerFactory loggerFactory,
    ILogger<ReplicatedStoreService> logger) : IHostedService
{
    private ReplicatedStore? _store;

    /// <summary>The running store; throws <see cref="InvalidOperationException"/> before the host started or after it stopped.</summary>
    public ReplicatedStore Store => _store ?? throw new InvalidOperationException("The member's store is not running (the host has not started, or has stopped).");

    /// <summary>This member's name in the cluster (from the configured initial members), or its id.</summary>
    public string MemberName => options.Value.InitialMembers?.FirstOrDefault(m => m.Id == options.Value.MemberId)?.Name ?? $"member-{options.Value.MemberId}";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value with { LoggerFactory = loggerFactory };
        _store = await ReplicatedStore.StartAsync(settings, transport, cancellationToken).ConfigureAwait(false);
        SampleLog.StoreStarted(logger, MemberName, settings.DataDirectory, _store.ClusterId);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _store, null) is { } store)
        {
            await store.DisposeAsync().ConfigureAwait(false);
            SampleLog.StoreStopped(logger, MemberName);
        }
    }
}
