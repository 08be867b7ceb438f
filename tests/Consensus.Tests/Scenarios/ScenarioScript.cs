using System.Text;

namespace EmbeddedRaft.Consensus.Tests.Scenarios;

/// <summary>
/// A scenario file in the style of etcd-io/raft's datadriven tests: blocks of a command line,
/// a <c>----</c> line, and the exact expected output up to a blank line. Lines starting with
/// <c>#</c> between blocks are comments.
/// </summary>
internal sealed class ScenarioScript
{
    public sealed record Block(int Line, string Command, string Expected, List<string> LeadingComments)
    {
        public string Actual { get; set; } = string.Empty;
    }

    public List<Block> Blocks { get; } = [];

    public List<string> TrailingComments { get; } = [];

    public static ScenarioScript Parse(string path)
    {
        var script = new ScenarioScript();
        var lines = File.ReadAllLines(path);
        var comments = new List<string>();
        var i = 0;
        while (i < lines.Length)
        {
            var line = lines[i];
            if (line.StartsWith('#') || line.Length == 0)
            {
                if (line.Length > 0 || comments.Count > 0)
                {
                    comments.Add(line);
                }

                i++;
                continue;
            }

            var start = i + 1;
            var command = line;
            i++;
            if (i >= lines.Length || lines[i] != "----")
            {
                throw new FormatException($"{path}:{start}: expected '----' after command '{command}'.");
            }

            i++;
            var expected = new StringBuilder();
            while (i < lines.Length && lines[i].Length > 0)
            {
                expected.Append(lines[i]).Append('\n');
                i++;
            }

            while (comments.Count > 0 && comments[^1].Length == 0)
            {
                comments.RemoveAt(comments.Count - 1);
            }

            script.Blocks.Add(new Block(start, command, expected.ToString(), comments));
            comments = [];
        }

        script.TrailingComments.AddRange(comments);
        return script;
    }

    public string Render()
    {
        var sb = new StringBuilder();
        foreach (var block in Blocks)
        {
            foreach (var comment in block.LeadingComments)
            {
                sb.Append(comment).Append('\n');
            }

            sb.Append(block.Command).Append('\n').Append("----\n").Append(block.Actual).Append('\n');
        }

        foreach (var comment in TrailingComments)
        {
            sb.Append(comment).Append('\n');
        }

        return sb.ToString().TrimEnd('\n') + "\n";
    }
}
