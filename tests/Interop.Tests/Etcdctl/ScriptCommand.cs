using System.Text;
using System.Text.RegularExpressions;

namespace EmbeddedRaft.Interop.Tests.Etcdctl;

/// <summary>A parsed <c>$ </c> line of an <see cref="EtcdctlScript"/> (see its remarks for the syntax).</summary>
internal sealed class ScriptCommand
{
    /// <summary>The member the command goes to (1-based), or 0 for every member.</summary>
    public int Member { get; private init; } = 1;

    /// <summary>etcdctl's arguments, before variable substitution.</summary>
    public IReadOnlyList<string> Arguments { get; private init; } = [];

    public string? CaptureVariable { get; private init; }

    /// <summary>Lines to read from a streaming command before stopping it; 0 = run to completion.</summary>
    public int StreamLines { get; private init; }

    public bool Sort { get; private init; }

    public IReadOnlyList<Regex> Masks { get; private init; } = [];

    /// <summary>The line as written, for rewriting.</summary>
    public string Text { get; private init; } = string.Empty;

    public static ScriptCommand Parse(string text, string script, int lineNumber)
    {
        string[] parts = text.Split(" | ");
        string head = parts[0].Trim();
        int member = 1;
        if (head.StartsWith('@'))
        {
            int space = head.IndexOf(' ', StringComparison.Ordinal);
            string target = head[1..space];
            member = target == "all" ? 0 : int.Parse(target, System.Globalization.CultureInfo.InvariantCulture);
            head = head[(space + 1)..];
        }

        string? capture = null;
        int arrow = head.IndexOf(" => ", StringComparison.Ordinal);
        if (arrow >= 0)
        {
            capture = head[(arrow + 4)..].Trim();
            head = head[..arrow];
        }

        List<string> words = SplitWords(head, script, lineNumber);
        if (words.Count == 0 || words[0] != "etcdctl")
        {
            throw new FormatException($"{script}:{lineNumber}: a command must start with 'etcdctl': '{text}'.");
        }

        int lines = 0;
        bool sort = false;
        var masks = new List<Regex>();
        foreach (string directive in parts.Skip(1))
        {
            string d = directive.Trim();
            if (d.StartsWith("lines ", StringComparison.Ordinal))
            {
                lines = int.Parse(d[6..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (d == "sort")
            {
                sort = true;
            }
            else if (d.StartsWith("mask ", StringComparison.Ordinal))
            {
                masks.Add(new Regex(d[5..], RegexOptions.CultureInvariant));
            }
            else
            {
                throw new FormatException($"{script}:{lineNumber}: unknown directive '| {d}' (lines N, sort, mask REGEX).");
            }
        }

        return new ScriptCommand
        {
            Member = member,
            Arguments = words.Skip(1).ToList(),
            CaptureVariable = capture,
            StreamLines = lines,
            Sort = sort,
            Masks = masks,
            Text = text,
        };
    }

    /// <summary>Shell-like words: spaces separate, single or double quotes group (no escapes).</summary>
    private static List<string> SplitWords(string text, string script, int lineNumber)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        foreach (char c in text)
        {
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                else
                {
                    word.Append(c);
                }
            }
            else if (c is '\'' or '"')
            {
                quote = c;
                inWord = true;
            }
            else if (c == ' ')
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }
            }
            else
            {
                word.Append(c);
                inWord = true;
            }
        }

        if (quote != '\0')
        {
            throw new FormatException($"{script}:{lineNumber}: unclosed quote in '{text}'.");
        }

        if (inWord)
        {
            words.Add(word.ToString());
        }

        return words;
    }
}
