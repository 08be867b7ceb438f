namespace EmbeddedRaft.Samples.Hosting;

/// <summary>Where the report job's election is held (configuration section <c>Election</c>).</summary>
internal sealed class ElectionSettings
{
    /// <summary>The election key: whoever created it (attached to its lease) leads.</summary>
    public string Key { get; set; } = "election/report-job";

    /// <summary>The leader's lease: if it stops renewing (a crash, a freeze, a partition), another member takes over after this long.</summary>
    public long LeaseTtlSeconds { get; set; } = 2;
}
