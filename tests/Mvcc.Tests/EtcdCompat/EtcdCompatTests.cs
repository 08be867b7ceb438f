using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// MvccStore answers exactly as a real etcd 3.4 did: every request tools/EtcdRecorder recorded
/// against etcd (testdata/seed-N.jsonl; docs/etcd-compat.md) is replayed against a fresh store, and
/// every field of every answer must equal etcd's: header revision, key-values with create and mod
/// revision, version, value and lease, more, count, deleted, prev kvs, succeeded, nested responses,
/// and for refused requests the gRPC code and etcd's message.
/// </summary>
[TestFixture]
public sealed class EtcdCompatTests
{
    /// <summary>How many differences a failure lists in full (the rest are counted).</summary>
    private const int ListedDifferences = 15;

    public static IEnumerable<string> Recordings() => EtcdRecording.Names();

    [Test]
    public void The_testdata_holds_several_seeds_and_thousands_of_operations()
    {
        IReadOnlyList<EtcdRecording> recordings = Recordings().Select(EtcdRecording.Load).ToList();

        Assert.That(recordings, Has.Count.GreaterThanOrEqualTo(3));
        Assert.That(recordings.Sum(r => r.Operations.Count), Is.GreaterThanOrEqualTo(2000));
        Assert.That(recordings.Select(r => r.EtcdVersion), Has.All.StartWith("3.4."));
    }

    /// <summary>The replay writes MvccStore's answers as etcd's JSON; this pins that conversion to
    /// etcd's conventions (defaults left out, an empty nested header as {}) on every recorded answer,
    /// so a replay difference is always the store's.</summary>
    [TestCaseSource(nameof(Recordings))]
    public void Every_recorded_answer_survives_the_conversion_unchanged(string recording)
    {
        EtcdRecording loaded = EtcdRecording.Load(recording);

        List<string> differences = loaded.Operations
            .Where(operation => !operation.IsError)
            .Select(operation => JsonDifference.Find(operation.Response, EtcdJsonResponseReader.RoundTrip(operation.Op, operation.Response!)) is string difference ? $"{operation}: {difference}" : null)
            .OfType<string>()
            .ToList();

        AssertNone(loaded, differences);
    }

    [TestCaseSource(nameof(Recordings))]
    public async Task A_fresh_store_answers_every_recorded_request_as_etcd_did(string recording)
    {
        EtcdRecording loaded = EtcdRecording.Load(recording);

        IReadOnlyList<string> differences = await RecordingReplay.RunAsync(loaded, new FaultInjectingFileSystem(seed: 1), "/store", reopenEvery: 0);

        AssertNone(loaded, differences);
    }

    [TestCaseSource(nameof(Recordings))]
    public async Task A_store_reopened_every_100_operations_still_answers_as_etcd_did(string recording)
    {
        EtcdRecording loaded = EtcdRecording.Load(recording);

        IReadOnlyList<string> differences = await RecordingReplay.RunAsync(loaded, new FaultInjectingFileSystem(seed: 1), "/store", reopenEvery: 100);

        AssertNone(loaded, differences);
    }

    private static void AssertNone(EtcdRecording recording, IReadOnlyList<string> differences)
    {
        if (differences.Count == 0)
        {
            return;
        }

        string listed = string.Join(Environment.NewLine, differences.Take(ListedDifferences));
        string more = differences.Count > ListedDifferences ? $"{Environment.NewLine}... and {differences.Count - ListedDifferences} more" : "";
        Assert.Fail($"{differences.Count} of {recording.Operations.Count} answers differ from etcd {recording.EtcdVersion}'s:{Environment.NewLine}{listed}{more}");
    }
}
