using System.Diagnostics.Metrics;

namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// The sample's own instruments, exported by OpenTelemetry beside the library's
/// (<c>EmbeddedRaft.Consensus</c>, <c>EmbeddedRaft.Storage</c>). Every measurement carries the member's name.
/// </summary>
internal sealed class DemoMetrics
{
    /// <summary>The meter's name, as given to OpenTelemetry's <c>AddMeter</c>.</summary>
    public const string MeterName = "EmbeddedRaft.Samples.HostedService";

    private readonly Counter<long> _jobRuns;
    private readonly Counter<long> _leadershipsWon;
    private readonly Counter<long> _configurationReloads;

    public DemoMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _jobRuns = meter.CreateCounter<long>("sample.report_job.runs", "{run}", "Runs of the report job (only by the elected member).");
        _leadershipsWon = meter.CreateCounter<long>("sample.report_job.elections_won", "{election}", "Times this member won the report job's election.");
        _configurationReloads = meter.CreateCounter<long>("sample.configuration.reloads", "{reload}", "Configuration reloads caused by changes in the replicated store.");
    }

    public void JobRan(string member) => _jobRuns.Add(1, new KeyValuePair<string, object?>("member", member));

    public void ElectionWon(string member) => _leadershipsWon.Add(1, new KeyValuePair<string, object?>("member", member));

    public void ConfigurationReloaded(string member) => _configurationReloads.Add(1, new KeyValuePair<string, object?>("member", member));
}
