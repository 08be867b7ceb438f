using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// Builds the Generic Host of one member: what a service that embeds a member of the replicated
/// store registers. Configuration: appsettings.json, then environment variables and the command line
/// (the host's defaults: <c>Report__Title=...</c> overrides <c>Report:Title</c>), then this member's
/// own id and directory, then the keys under <c>config/</c> in the store itself (live).
/// </summary>
internal static class MemberHost
{
    /// <summary>
    /// The host of member <paramref name="memberId"/>, keeping its data in
    /// <paramref name="dataDirectory"/> and reaching the others through <paramref name="transport"/>.
    /// <paramref name="exportMetrics"/> turns on the OpenTelemetry console exporter (one host is
    /// enough in one process: meters are process-wide, so it sees every member's instruments).
    /// </summary>
    public static IHost Build(ulong memberId, string dataDirectory, IRaftTransport transport, bool exportMetrics)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ApplicationName = "EmbeddedRaft.Samples.HostedService",
            ContentRootPath = AppContext.BaseDirectory, // appsettings.json is copied beside the program
        });

        // In a deployment with one member per process these come from the environment
        // (Member__MemberId=1, Member__DataDirectory=/var/lib/app) like any other setting.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Member:MemberId"] = memberId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Member:DataDirectory"] = dataDirectory,
            // Binding Member:Raft:Raft (PreVote, CheckQuorum) writes RaftOptions.Id back, which refuses
            // 0: give it this member's id too (see RaftNodeOptions.Raft).
            ["Member:Raft:Raft:Id"] = memberId.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Telemetry:ConsoleExporter"] = exportMetrics ? "true" : "false",
        });

        // The store's own keys come last: they override every file and variable, and change live.
        var storeConfiguration = new StoreConfigurationProvider();
        builder.Configuration.Sources.Add(storeConfiguration);

        var services = builder.Services;
        services.AddSingleton(Options.Create(BindMemberOptions(builder.Configuration.GetSection("Member"))));
        services.Configure<ElectionSettings>(builder.Configuration.GetSection("Election"));
        services.Configure<ReportSettings>(builder.Configuration.GetSection("Report"));
        services.AddSingleton(transport);
        services.AddSingleton(storeConfiguration);
        services.AddSingleton<DemoMetrics>();

        // The member first: hosted services start in this order and stop in the reverse one.
        services.AddSingleton<ReplicatedStoreService>();
        services.AddHostedService(sp => sp.GetRequiredService<ReplicatedStoreService>());
        services.AddSingleton<ConfigurationWatchService>();
        services.AddHostedService(sp => sp.GetRequiredService<ConfigurationWatchService>());
        services.AddSingleton<ElectedJobService>();
        services.AddHostedService(sp => sp.GetRequiredService<ElectedJobService>());

        var telemetry = builder.Configuration.GetSection("Telemetry");
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("embeddedraft-hosted-sample", serviceInstanceId: $"member-{memberId}"))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(RaftNodeMetricsMeterName, StorageMeterName, ReplicatedStoreMeterName, DemoMetrics.MeterName);
                if (telemetry.GetValue<bool>("ConsoleExporter"))
                {
                    metrics.AddConsoleExporter((_, reader) =>
                        reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = telemetry.GetValue("ExportIntervalSeconds", 60) * 1000);
                }
            });

        return builder.Build();
    }

    /// <summary>
    /// The section <c>Member</c> as <see cref="ReplicatedStoreOptions"/>, bound onto fresh nested
    /// options: the configuration binder binds into a nested value in place, and the defaults of
    /// <see cref="ReplicatedStoreOptions.Raft"/> and <see cref="ReplicatedStoreOptions.Store"/> are
    /// shared instances (binding into them would change them for every member in the process).
    /// </summary>
    private static ReplicatedStoreOptions BindMemberOptions(IConfiguration section)
    {
        var options = new ReplicatedStoreOptions { Raft = new RaftNodeOptions(), Store = new MvccStoreOptions() };
        section.Bind(options);
        return options;
    }

    // The library's meters: the Raft node's and the transport's, the durable log's, and the
    // replicated store's (hash checks, alarms, lease expiry).
    private const string RaftNodeMetricsMeterName = "EmbeddedRaft.Consensus";
    private const string StorageMeterName = EmbeddedRaft.Consensus.Log.DurableRaftLog.MeterName;
    private const string ReplicatedStoreMeterName = "EmbeddedRaft.Mvcc.Replication";
}
