using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>Lease options default to etcd's values, check their own ranges naming themselves, and bind from configuration under MvccStoreOptions.</summary>
public sealed class LeaseOptionsTests
{
    [Test]
    public void DefaultsAreEtcds()
    {
        var options = MvccStoreOptions.Default.Leases;
        Assert.That((options.MinTtlSeconds, options.ExpiryCheckInterval, options.MaxRevokesPerSecond, options.ExpiredReportRetryInterval, options.RevokeExpired),
            Is.EqualTo((2L, TimeSpan.FromMilliseconds(500), 1_000, TimeSpan.FromSeconds(3), true)));
        Assert.That(options.TimeProvider, Is.SameAs(TimeProvider.System));
        Assert.That(LeaseOptions.MaxTtlSeconds, Is.EqualTo(9_000_000_000L));
    }

    private static IEnumerable<TestCaseData> BadValues()
    {
        yield return new TestCaseData("MinTtlSeconds", (Func<LeaseOptions>)(() => new LeaseOptions { MinTtlSeconds = 0 }));
        yield return new TestCaseData("MinTtlSeconds", (Func<LeaseOptions>)(() => new LeaseOptions { MinTtlSeconds = LeaseOptions.MaxTtlSeconds + 1 }));
        yield return new TestCaseData("ExpiryCheckInterval", (Func<LeaseOptions>)(() => new LeaseOptions { ExpiryCheckInterval = TimeSpan.Zero }));
        yield return new TestCaseData("ExpiryCheckInterval", (Func<LeaseOptions>)(() => new LeaseOptions { ExpiryCheckInterval = TimeSpan.FromMinutes(2) }));
        yield return new TestCaseData("MaxRevokesPerSecond", (Func<LeaseOptions>)(() => new LeaseOptions { MaxRevokesPerSecond = 0 }));
        yield return new TestCaseData("ExpiredReportRetryInterval", (Func<LeaseOptions>)(() => new LeaseOptions { ExpiredReportRetryInterval = TimeSpan.FromHours(2) }));
    }

    [TestCaseSource(nameof(BadValues))]
    public void AnOutOfRangeValueIsRefusedNamingTheOption(string name, Func<LeaseOptions> create)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => create())!;
        Assert.That(error.ParamName, Is.EqualTo(name));
        Assert.That(error.Message, Does.Contain(name));
    }

    [Test]
    public void NullTimeProviderOrLeaseOptionsAreRefused()
    {
        Assert.That(Assert.Throws<ArgumentNullException>(() => _ = new LeaseOptions { TimeProvider = null! })!.ParamName, Is.EqualTo("TimeProvider"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => _ = new MvccStoreOptions { Leases = null! })!.ParamName, Is.EqualTo("Leases"));
    }

    [Test]
    public void OptionsBindFromConfiguration()
    {
        var options = OptionsBinding.Bind<MvccStoreOptions>(new Dictionary<string, string?>
        {
            ["Leases:MinTtlSeconds"] = "5",
            ["Leases:ExpiryCheckInterval"] = "00:00:00.250",
            ["Leases:MaxRevokesPerSecond"] = "200",
            ["Leases:RevokeExpired"] = "false",
        });
        var leases = options.Leases;
        Assert.That((leases.MinTtlSeconds, leases.ExpiryCheckInterval, leases.MaxRevokesPerSecond, leases.RevokeExpired), Is.EqualTo((5L, TimeSpan.FromMilliseconds(250), 200, false)));
        var error = Assert.Catch(() => OptionsBinding.Bind<MvccStoreOptions>(new Dictionary<string, string?> { ["Leases:MaxRevokesPerSecond"] = "0" }))!;
        Assert.That(OptionsBinding.Innermost(error), Is.TypeOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("MaxRevokesPerSecond"));
    }
}
