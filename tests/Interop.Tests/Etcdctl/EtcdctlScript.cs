using System.Text;

namespace EmbeddedRaft.Interop.Tests.Etcdctl;

/// <summary>
/// A recorded etcdctl session (testdata/etcdctl/*.txt): commands run in order against a fresh
/// 3-member cluster, each followed by the output a real etcd 3.4 gave, normalised.
/// </summary>
/// <remarks>
/// Format, one block per command:
/// <code>
/// # a comment (kept on rewrite)
/// $ [@N|@all] etcdctl ARGS [=> VAR] [| lines N] [| sort] [| mask REGEX]...
/// &lt; a line of standard input ("&lt;" alone is an empty line)
/// expected output lines (stdout, then stderr lines that are not JSON logs, then "[exit N]")
/// </code>
/// <c>@N</c> sends the command to member N only (default: member 1), <c>@all</c> to every member.
/// <c>=&gt; VAR</c> captures the first hex number of 10-16 digits in the output (a lease or member id) as
/// <c>$VAR</c> for later commands and shows it as <c>&lt;VAR&gt;</c>. <c>| lines N</c> reads N
/// lines from a command that streams (watch, keep-alive) and then stops it. <c>| sort</c> sorts
/// the output lines (member order follows random ids). <c>| mask REGEX</c> replaces what each
/// group of REGEX matched with <c>*</c> (terms, indexes, sizes, timings: what legitimately differs).
/// </remarks>
internal sealed class EtcdctlScript
{
    private EtcdctlScript(string name, IReadOnlyList<ScriptBlock> blocks)
    {
        Name = name;
        Blocks = blocks;
    }

    public string Name { get; }

    public IReadOnlyList<ScriptBlock> Blocks { get; }

    public static EtcdctlScript Parse(string name, string text)
    {
        var blocks = new List<ScriptBlock>();
        var comments = new List<string>();
        ScriptBlock? current = null;
        int lineNumber = 0;
        foreach (string line in text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n'))
        {
            lineNumber++;
            if (line.StartsWith("$ ", StringComparison.Ordinal))
            {
                current = new ScriptBlock(ScriptCommand.Parse(line[2..], name, lineNumber), comments.ToList());
                comments.Clear();
                blocks.Add(current);
            }
            else if (line.StartsWith('#') && (current is null || current.Expected.Count == 0 || IsBlankTail(current)))
            {
                // A comment between blocks belongs to the next command.
                TrimTrailingBlankLines(current);
                comments.Add(line);
            }
            else if (current is null)
            {
                if (line.Length > 0)
                {
                    throw new FormatException($"{name}:{lineNumber}: output before the first '$ ' command: '{line}'.");
                }
            }
            else if ((line == "<" || line.StartsWith("< ", StringComparison.Ordinal)) && current.Expected.Count == 0)
            {
                // Output never starts so: the names normalisation writes are "<name>".
                current.Input.Add(line.Length > 1 ? line[2..] : string.Empty);
            }
            else
            {
                current.Expected.Add(line);
            }
        }

        foreach (ScriptBlock block in blocks)
        {
            TrimTrailingBlankLines(block);
        }

        return new EtcdctlScript(name, blocks);
    }

    /// <summary>The script with every block's expected output replaced by what it actually printed.</summary>
    public string Render(IReadOnlyList<IReadOnlyList<string>> outputs)
    {
        var text = new StringBuilder();
        for (int i = 0; i < Blocks.Count; i++)
        {
            ScriptBlock block = Blocks[i];
            if (i > 0)
            {
                text.Append('\n');
            }

            foreach (string comment in block.Comments)
            {
                text.Append(comment).Append('\n');
            }

            text.Append("$ ").Append(block.Command.Text).Append('\n');
            foreach (string input in block.Input)
            {
                text.Append(input.Length == 0 ? "<" : "< " + input).Append('\n');
            }

            foreach (string line in outputs[i])
            {
                text.Append(line).Append('\n');
            }
        }

        return text.ToString();
    }

    private static bool IsBlankTail(ScriptBlock block) => block.Expected.Count > 0 && block.Expected[^1].Length == 0;

    private static void TrimTrailingBlankLines(ScriptBlock? block)
    {
        while (block is not null && block.Expected.Count > 0 && block.Expected[^1].Length == 0)
        {
            block.Expected.RemoveAt(block.Expected.Count - 1);
        }
    }
}
