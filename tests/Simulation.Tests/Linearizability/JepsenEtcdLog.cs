using System.Globalization;
using System.Text.RegularExpressions;
using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// Reads the client history of a Jepsen etcd register test from its log (format in
/// Jepsen/etcd/README.md): every <c>jepsen.util</c> line is an event of a process, the line number
/// is its time. A read that failed (<c>:fail :read :timed-out</c>) had no effect and observed
/// nothing, so it is left out; a write or compare-and-set that timed out (<c>:info</c>) or never
/// completed is indeterminate. Anything else unexpected is a <see cref="FormatException"/> naming
/// the line.
/// </summary>
internal static partial class JepsenEtcdLog
{
    /// <summary>The key every operation uses (the Jepsen test has one register).</summary>
    public const string Key = "r";

    [GeneratedRegex(@"jepsen\.util - (\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$", RegexOptions.CultureInvariant)]
    private static partial Regex EventLine();

    public static JepsenHistory Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var operations = new List<Operation<RegisterInput, RegisterOutput>?>();
        var pending = new Dictionary<int, (int Index, string Function, string Value, long Invoked)>();
        int droppedReads = 0;
        string[] lines = text.Split('\n');
        for (int number = 1; number <= lines.Length; number++)
        {
            string line = lines[number - 1];
            if (!line.Contains("jepsen.util", StringComparison.Ordinal))
            {
                continue;
            }

            Match match = EventLine().Match(line);
            if (!match.Success)
            {
                throw new FormatException($"Line {number}: not a Jepsen event: '{line.TrimEnd()}'.");
            }

            int process = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            string type = match.Groups[2].Value;
            string function = match.Groups[3].Value;
            string value = match.Groups[4].Value;
            if (type == "invoke")
            {
                if (pending.ContainsKey(process))
                {
                    throw new FormatException($"Line {number}: process {process} invokes while its previous operation is pending.");
                }

                pending[process] = (operations.Count, function, value, number);
                operations.Add(null);
                continue;
            }

            if (!pending.Remove(process, out var invoked))
            {
                throw new FormatException($"Line {number}: process {process} completes an operation it never invoked.");
            }

            if (invoked.Function != function)
            {
                throw new FormatException($"Line {number}: process {process} invoked :{invoked.Function} but completes :{function}.");
            }

            RegisterInput input = Input(function, invoked.Value, number);
            Operation<RegisterInput, RegisterOutput>? op = (type, function) switch
            {
                ("ok", "read") => Operation.Completed(process, invoked.Invoked, number, input, RegisterOutput.ReadValue(Value(value, number))),
                ("fail", "read") => null,
                ("ok", _) => Operation.Completed(process, invoked.Invoked, number, input, RegisterOutput.Ok),
                ("fail", "cas") => Operation.Completed(process, invoked.Invoked, number, input, RegisterOutput.Failed),
                ("info", "write" or "cas") => Operation.IndeterminateAfter<RegisterInput, RegisterOutput>(process, invoked.Invoked, input),
                _ => throw new FormatException($"Line {number}: unexpected :{type} :{function}."),
            };
            if (op is null)
            {
                droppedReads++;
            }

            if (type == "ok" && function != "read" && value != invoked.Value)
            {
                throw new FormatException($"Line {number}: process {process} completes :{function} {value} but invoked it with {invoked.Value}.");
            }

            operations[invoked.Index] = op;
        }

        // Operations that never completed stay indeterminate.
        foreach ((int process, var invoked) in pending)
        {
            operations[invoked.Index] = invoked.Function == "read"
                ? null
                : Operation.IndeterminateAfter<RegisterInput, RegisterOutput>(process, invoked.Invoked, Input(invoked.Function, invoked.Value, invoked.Invoked));
        }

        return new JepsenHistory(operations.OfType<Operation<RegisterInput, RegisterOutput>>().ToList(), droppedReads);
    }

    private static RegisterInput Input(string function, string value, long line)
    {
        switch (function)
        {
            case "read":
                return RegisterInput.Read(Key);
            case "write":
                return RegisterInput.Write(Key, Value(value, line) ?? throw new FormatException($"Line {line}: a write of nil."));
            default:
                string[] pair = value.Trim('[', ']').Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (pair.Length != 2 || Value(pair[0], line) is not int expected || Value(pair[1], line) is not int next)
                {
                    throw new FormatException($"Line {line}: a compare-and-set needs [A B], not '{value}'.");
                }

                return RegisterInput.CompareAndSet(Key, expected, next);
        }
    }

    private static int? Value(string text, long line) =>
        text == "nil" ? null
        : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) ? value
        : throw new FormatException($"Line {line}: '{text}' is not a value.");
}

/// <summary>A parsed Jepsen history and how many failed reads it left out.</summary>
internal sealed record JepsenHistory(IReadOnlyList<Operation<RegisterInput, RegisterOutput>> Operations, int DroppedFailedReads);
