using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// The checker reproduces the known verdict of each of the 52 histories Jepsen recorded against
/// etcd (Jepsen/etcd/verdicts.tsv), within a step bound: a history the search cannot decide within
/// it comes out Unknown and fails. Its evidence is checked independently (<see cref="WitnessVerifier"/>).
/// </summary>
[Parallelizable(ParallelScope.Children)]
public sealed class JepsenEtcdHistoryTests
{
    /// <summary>
    /// Far above what the slowest history needs (see docs/benchmarks.md), far below what a hang
    /// would take: a regression in pruning shows up as Unknown here.
    /// </summary>
    private static readonly LinearizabilityCheckerOptions s_bound = LinearizabilityCheckerOptions.Default with { MaxSteps = 5_000_000 };

    private static string Folder => Path.Combine(TestContext.CurrentContext.TestDirectory, "Jepsen", "etcd");

    public static IEnumerable<TestCaseData> Histories()
    {
        string verdicts = Path.Combine(AppContext.BaseDirectory, "Jepsen", "etcd", "verdicts.tsv");
        foreach (string line in File.ReadLines(verdicts).Skip(1).Where(line => line.Length > 0))
        {
            string[] fields = line.Split('\t');
            yield return new TestCaseData(fields[0], bool.Parse(fields[1])).SetName($"{{m}}({fields[0]}, linearizable: {fields[1]})");
        }
    }

    [Test]
    public void Every_history_in_the_folder_has_a_verdict()
    {
        var logs = Directory.GetFiles(Folder, "*.log").Select(Path.GetFileName).Order().ToList();
        var listed = Histories().Select(data => (string)data.Arguments[0]!).Order().ToList();
        Assert.That(listed, Is.EqualTo(logs));
        Assert.That(listed, Has.Count.EqualTo(52));
    }

    [TestCaseSource(nameof(Histories))]
    public void Checker_reproduces_the_known_verdict(string file, bool linearizable)
    {
        JepsenHistory history = JepsenEtcdLog.Parse(File.ReadAllText(Path.Combine(Folder, file)));
        LinearizabilityResult<RegisterInput, RegisterOutput> result =
            LinearizabilityChecker.Check(RegisterModel.Instance, history.Operations, s_bound);

        TestContext.Out.WriteLine($"{file}: {history.Operations.Count} operations ({history.Operations.Count(op => op.Indeterminate)} indeterminate, {history.DroppedFailedReads} failed reads left out), {result.Steps} steps");
        TestContext.Out.WriteLine(result.Explanation);
        Assert.That(result.Verdict, Is.Not.EqualTo(LinearizabilityVerdict.Unknown), result.Explanation);
        if (linearizable)
        {
            WitnessVerifier.VerifyWitness(RegisterModel.Instance, history.Operations, result);
        }
        else
        {
            WitnessVerifier.VerifyCounterexample(RegisterModel.Instance, result);
        }
    }
}
