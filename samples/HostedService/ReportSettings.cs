namespace EmbeddedRaft.Samples.Hosting;

/// <summary>
/// Settings of the report job, read through <c>IOptionsMonitor&lt;ReportSettings&gt;</c>. Defaults
/// come from appsettings.json (section <c>Report</c>); keys under <c>config/Report/</c> in the
/// replicated store override them live, on every member (see <see cref="StoreConfigurationProvider"/>).
/// </summary>
internal sealed class ReportSettings
{
    /// <summary>What the job writes in its report.</summary>
    public string Title { get; set; } = "untitled";

    /// <summary>Pause between two runs of the job, in milliseconds.</summary>
    public int IntervalMilliseconds { get; set; } = 250;
}
