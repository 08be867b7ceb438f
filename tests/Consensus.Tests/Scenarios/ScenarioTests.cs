using System.Reflection;

namespace EmbeddedRaft.Consensus.Tests.Scenarios;

/// <summary>
/// Runs every script in <c>Scenarios/testdata</c> and compares each command's output with the
/// expected trace in the file. With REWRITE=1 the files are rewritten with the actual output
/// instead; review the change as a diff before committing it.
/// </summary>
public class ScenarioTests
{
    // The scripts are read from (and, with REWRITE=1, written back to) the source tree, whose
    // location the build records: [CallerFilePath] would not do, because CI builds map source
    // paths to "/_/" for deterministic output.
    private static string DataDirectory() =>
        Path.Combine(
            typeof(ScenarioTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "ProjectDirectory").Value!,
            "Scenarios",
            "testdata");

    public static IEnumerable<TestCaseData> Scripts() =>
        Directory.GetFiles(DataDirectory(), "*.txt").Order(StringComparer.Ordinal)
            .Select(path => new TestCaseData(Path.GetFileName(path)).SetName("Scenario " + Path.GetFileNameWithoutExtension(path)));

    [TestCaseSource(nameof(Scripts))]
    public void ScriptProducesTheExpectedTrace(string file)
    {
        var path = Path.Combine(DataDirectory(), file);
        var script = ScenarioScript.Parse(path);
        var runner = new ScenarioRunner();
        var rewrite = Environment.GetEnvironmentVariable("REWRITE") == "1";
        foreach (var block in script.Blocks)
        {
            block.Actual = runner.Run(block.Command);
            if (!rewrite && block.Actual != block.Expected)
            {
                Assert.Fail(
                    $"{file}:{block.Line}: '{block.Command}' produced a different trace (REWRITE=1 regenerates; review the diff).\n"
                    + $"--- expected\n{block.Expected}--- actual\n{block.Actual}");
            }
        }

        if (rewrite)
        {
            File.WriteAllText(path, script.Render());
            TestContext.Out.WriteLine($"rewrote {path}");
        }
    }

    [Test]
    public void EveryScenarioOfTheIssueHasAScript()
    {
        var names = Directory.GetFiles(DataDirectory(), "*.txt").Select(Path.GetFileNameWithoutExtension).ToHashSet();
        Assert.That(names, Is.SupersetOf(new[]
        {
            "campaign", "prevote", "checkquorum", "probe_and_replicate", "replicate_pause",
            "snapshot_catchup", "transfer_leadership", "read_index_safe", "read_index_lease", "forwarding",

            // Membership changes (issue 6).
            "confchange_add_voter", "confchange_add_learner_promote", "confchange_joint_auto", "confchange_joint_explicit",
            "confchange_replace_leader", "confchange_remove_leader", "confchange_demote_voter", "confchange_errors",
            "confchange_campaign_block",
        }));
    }
}
