using System.Text;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Replication;

/// <summary>
/// The real replicated store on one deterministic scheduler (issue 18): the same seed gives the
/// same execution, step for step, and no library work runs off the driving thread.
/// </summary>
[TestFixture]
public sealed class DeterministicReplicatedStoreTests
{
    private static IEnumerable<int> Seeds() => TestSeeds.Choose("DETERMINISTIC_SEED", "DETERMINISTIC_SOAK_SEEDS", 1, 1);

    [TestCaseSource(nameof(Seeds))]
    public void PutsOnAThreeMemberClusterRepeatExactlyForTheSameSeed(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} (replay: DETERMINISTIC_SEED={seed})");
        var first = RunPuts(seed);
        var second = RunPuts(seed);
        var other = RunPuts(seed + 1_000_000);

        Assert.That(second.Hash, Is.EqualTo(first.Hash), $"seed {seed}: two runs of the same seed took different steps; {FirstDifference(first.Trace, second.Trace)}");
        Assert.That(other.Hash, Is.Not.EqualTo(first.Hash), $"seed {seed}: another seed took exactly the same {first.Trace.Count} steps, so the trace does not see the seed");
    }

    private static (string Hash, IReadOnlyList<string> Trace) RunPuts(int seed)
    {
        using var cluster = new DeterministicCluster(seed, 3);
        cluster.StartAll();
        for (int i = 0; i < 12; i++)
        {
            ulong via = (ulong)cluster.Random.Next(1, 4);
            string key = $"k{cluster.Random.Next(4)}";
            var put = cluster.Do(via, $"put {key}={i}", s => s.PutAsync(new PutRequest { Key = Bytes(key), Value = Bytes($"{i}") }), r => $"rev {r.Header.Revision}");
            Assert.That(put.Header.Revision, Is.EqualTo(i + 2), $"seed {seed}: the {i}th put's revision");
        }

        foreach (ulong id in cluster.Members.Keys.Order().ToList())
        {
            var read = cluster.Do(id, "range k", s => s.RangeAsync(new RangeRequest { Key = Bytes("k"), RangeEnd = Bytes("l") }), r => $"{r.Count} keys at {r.Header.Revision}");
            Assert.That(read.Header.Revision, Is.EqualTo(13), $"seed {seed}: member {id} reads every put (linearizable)");
        }

        Assert.That(cluster.OffThreadEvents, Is.Empty, $"seed {seed}: library work escaped the scheduler's thread (first: {(cluster.OffThreadEvents.Count > 0 ? cluster.OffThreadEvents[0] : "none")})");
        return (cluster.TraceHash, [.. cluster.Trace]);
    }

    /// <summary>Where two traces part: the first differing line of each, with the lines before it.</summary>
    internal static string FirstDifference(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        int i = 0;
        while (i < a.Count && i < b.Count && a[i] == b[i])
        {
            i++;
        }

        string before = string.Join("\n", a.Skip(Math.Max(0, i - 5)).Take(Math.Min(i, 5)));
        return $"they part at line {i} of {a.Count}/{b.Count}, after:\n{before}\nfirst: {(i < a.Count ? a[i] : "(end)")}\nsecond: {(i < b.Count ? b[i] : "(end)")}";
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);
}
