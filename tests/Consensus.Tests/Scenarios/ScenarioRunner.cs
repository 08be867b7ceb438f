using System.Globalization;
using System.Text;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;

namespace EmbeddedRaft.Consensus.Tests.Scenarios;

/// <summary>
/// Interprets scenario commands against a cluster of <see cref="TestNode"/>s and produces the
/// trace each command prints. Commands:
/// <code>
/// add-nodes N [prevote] [checkquorum] [lease] [no-forwarding] [no-step-down] [heartbeat=T] [inflight=K] [max-msg-bytes=B] [max-uncommitted=B]
/// add-node ID                      (a new, empty node with the same options; it joins via a snapshot)
/// campaign ID | propose ID DATA | propose-batch ID DATA... | read-index ID CTX
/// propose-conf-change ID [vN|lN|rN]... [transition=auto|simple|implicit|explicit]   (no changes: leave joint)
/// membership                       (each node's applied configuration and role)
/// transfer-leadership ID TO | report-unreachable ID TO
/// tick ID [N] | tick-heartbeat ID | tick-election ID | tick-all N   (every node once per round, in lockstep)
/// process-ready ID... | deliver-msgs [drop] ID... | stabilize [ID...]
/// ready-take ID                    (take a Ready, persist it and send its messages, but neither apply nor advance:
///                                   the node keeps stepping and ticking meanwhile, as an async host's does)
/// ready-finish ID                  (apply the held Ready and advance)
/// partition A B | C ... | heal | restart ID | compact ID INDEX
/// raft-state | raft-log ID | status ID
/// </code>
/// Messages wait in per-node inboxes until delivered; across a partition they are dropped on delivery.
/// </summary>
internal sealed class ScenarioRunner
{
    private readonly SortedDictionary<ulong, TestNode> _nodes = [];
    private readonly Dictionary<ulong, List<Message>> _inbox = [];
    private readonly Dictionary<ulong, int> _group = [];
    private readonly Dictionary<ulong, Ready> _held = [];
    private string[] _flags = [];

    /// <summary>Runs <paramref name="commands"/> in order, failing the test on the first that reports an error; returns their output.</summary>
    public string RunOrFail(params string[] commands)
    {
        var output = new System.Text.StringBuilder();
        foreach (var command in commands)
        {
            var result = Run(command);
            Assert.That(result, Does.Not.Contain("error:"), $"'{command}' failed:\n{result}");
            output.Append(result);
        }

        return output.ToString();
    }

    public string Run(string commandLine)
    {
        var output = new StringBuilder();
        var args = commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        try
        {
            Execute(args[0], args[1..], output);
        }
        catch (ProposalDroppedException ex)
        {
            output.AppendLine(CultureInfo.InvariantCulture, $"error: proposal dropped ({ex.Reason})");
        }
        catch (MessageRejectedException ex)
        {
            output.AppendLine(CultureInfo.InvariantCulture, $"error: message rejected ({ex.Reason}): {ex.Message}");
        }
        catch (ConfChangeRejectedException ex)
        {
            output.AppendLine(CultureInfo.InvariantCulture, $"error: {ex.Message}");
        }
        catch (InvariantViolationException ex)
        {
            // Recorded rather than thrown so that a trace shows where a core invariant broke.
            output.AppendLine(CultureInfo.InvariantCulture, $"error: invariant violated: {ex.Message}");
        }

        return output.Length == 0 ? "ok\n" : output.ToString().Replace("\r\n", "\n", StringComparison.Ordinal);
    }

    /// <summary>The node with <paramref name="id"/>, for tests that script a scenario and then check state.</summary>
    public TestNode Node(ulong id) => _nodes[id];

    private static ulong Id(string s) => ulong.Parse(s, CultureInfo.InvariantCulture);

    private IEnumerable<ulong> Ids(string[] args) => args.Length == 0 ? _nodes.Keys : args.Select(Id);

    private void Execute(string command, string[] args, StringBuilder output)
    {
        switch (command)
        {
            case "add-nodes":
                AddNodes(args);
                break;
            case "add-node":
                var newId = Id(args[0]);
                _nodes[newId] = new TestNode(Options(newId), new MemoryStorage());
                _inbox[newId] = [];
                break;
            case "propose-conf-change":
                _nodes[Id(args[0])].Node.ProposeConfChange(ParseConfChange(args[1..]));
                break;
            case "membership":
                foreach (var (id, n) in _nodes)
                {
                    output.AppendLine(FormattableString.Invariant($"{id}: {n.Core.Role} applied={n.AppliedIndex} {n.Config}"));
                }

                break;
            case "campaign":
                _nodes[Id(args[0])].Node.Campaign();
                break;
            case "propose":
                _nodes[Id(args[0])].Node.Propose(Encoding.UTF8.GetBytes(args[1]));
                break;
            case "propose-batch":
                _nodes[Id(args[0])].Node.ProposeBatch(args[1..].Select(a => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(a)).ToArray());
                break;
            case "read-index":
                _nodes[Id(args[0])].Node.ReadIndex(Encoding.UTF8.GetBytes(args[1]));
                break;
            case "transfer-leadership":
                _nodes[Id(args[0])].Node.TransferLeadership(Id(args[1]));
                break;
            case "report-unreachable":
                _nodes[Id(args[0])].Node.ReportUnreachable(Id(args[1]));
                break;
            case "tick":
                Tick(_nodes[Id(args[0])], args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1);
                break;
            case "tick-all":
                for (var round = 0; round < int.Parse(args[0], CultureInfo.InvariantCulture); round++)
                {
                    foreach (var n in _nodes.Values)
                    {
                        n.Node.Tick();
                    }
                }

                break;
            case "ready-take":
                TakeReady(Id(args[0]), output);
                break;
            case "ready-finish":
                FinishReady(Id(args[0]), output);
                break;
            case "tick-heartbeat":
                Tick(_nodes[Id(args[0])], _nodes[Id(args[0])].Options.HeartbeatTimeoutTicks);
                break;
            case "tick-election":
                var node = _nodes[Id(args[0])];
                var ticks = node.Core.Role == StateRole.Leader
                    ? node.Options.ElectionTimeoutTicks
                    : node.Core.RandomizedElectionTimeout - node.Core.ElectionElapsed;
                Tick(node, Math.Max(1, ticks));
                break;
            case "process-ready":
                foreach (var id in Ids(args))
                {
                    ProcessReady(id, output);
                }

                break;
            case "deliver-msgs":
                var drop = args.Length > 0 && args[0] == "drop";
                foreach (var id in Ids(drop ? args[1..] : args))
                {
                    DeliverMessages(id, drop, output);
                }

                break;
            case "stabilize":
                Stabilize(Ids(args).ToArray(), output);
                break;
            case "partition":
                _group.Clear();
                var group = 0;
                foreach (var arg in args)
                {
                    if (arg == "|")
                    {
                        group++;
                    }
                    else
                    {
                        _group[Id(arg)] = group;
                    }
                }

                break;
            case "heal":
                _group.Clear();
                break;
            case "restart":
                _nodes[Id(args[0])].Restart();
                _inbox[Id(args[0])].Clear();
                break;
            case "compact":
                var target = _nodes[Id(args[0])];
                var index = Id(args[1]);
                target.Storage.CreateSnapshot(index, target.Core.Tracker.ToConfState());
                target.Storage.Compact(index);
                break;
            case "raft-state":
                foreach (var (id, n) in _nodes)
                {
                    output.AppendLine(FormattableString.Invariant(
                        $"{id}: {n.Core.Role} Term:{n.Core.Term} Lead:{n.Core.Lead} Commit:{n.Core.Log.Committed} Last:{n.Core.Log.LastIndex()}"));
                }

                break;
            case "raft-log":
                var logNode = _nodes[Id(args[0])];
                output.AppendLine(FormattableString.Invariant($"first:{logNode.Core.Log.FirstIndex()} entries:"));
                foreach (var e in logNode.LogEntries())
                {
                    output.AppendLine("  " + TraceFormat.Entry(e));
                }

                break;
            case "status":
                var status = _nodes[Id(args[0])].Node.GetStatus();
                output.AppendLine(FormattableString.Invariant($"{status.Id}: {status.SoftState.Role} Term:{status.HardState.Term} Transferee:{status.LeadTransferee}"));
                foreach (var (id, pr) in status.Progress.OrderBy(p => p.Key))
                {
                    output.AppendLine(FormattableString.Invariant(
                        $"  {id}: {pr.State} match={pr.Match} next={pr.Next}{(pr.IsPaused ? " paused" : string.Empty)}{(pr.InflightMessages > 0 ? $" inflight={pr.InflightMessages}" : string.Empty)}{(pr.PendingSnapshot > 0 ? $" pendingSnap={pr.PendingSnapshot}" : string.Empty)}"));
                }

                break;
            default:
                throw new FormatException($"Unknown scenario command '{command}'.");
        }
    }

    private static ConfChange ParseConfChange(string[] args)
    {
        var transition = ConfChangeTransition.Auto;
        var items = new List<ConfChangeItem>();
        foreach (var arg in args)
        {
            if (arg.StartsWith("transition=", StringComparison.Ordinal))
            {
                transition = arg["transition=".Length..] switch
                {
                    "auto" => ConfChangeTransition.Auto,
                    "simple" => ConfChangeTransition.Simple,
                    "implicit" => ConfChangeTransition.JointImplicit,
                    "explicit" => ConfChangeTransition.JointExplicit,
                    var other => throw new FormatException($"Unknown transition '{other}'."),
                };
                continue;
            }

            var type = arg[0] switch
            {
                'v' => ConfChangeType.AddVoter,
                'l' => ConfChangeType.AddLearner,
                'r' => ConfChangeType.RemoveNode,
                _ => throw new FormatException($"Unknown change '{arg}' (expected vN, lN or rN)."),
            };
            items.Add(new ConfChangeItem(type, Id(arg[1..])));
        }

        return new ConfChange(items, transition);
    }

    private void AddNodes(string[] args)
    {
        var count = int.Parse(args[0], CultureInfo.InvariantCulture);
        _flags = args[1..];
        var ids = Fixtures.Ids(count);
        foreach (var id in ids)
        {
            _nodes[id] = new TestNode(Options(id), MemoryStorage.WithVoters(ids));
            _inbox[id] = [];
        }
    }

    private RaftOptions Options(ulong id)
    {
        var flags = _flags;
        string? Value(string key) => flags.Where(f => f.StartsWith(key + "=", StringComparison.Ordinal)).Select(f => f[(key.Length + 1)..]).FirstOrDefault();
        return new RaftOptions(id)
        {
            ElectionTimeoutTicks = 10,
            HeartbeatTimeoutTicks = Value("heartbeat") is { } h ? int.Parse(h, CultureInfo.InvariantCulture) : 1,
            PreVote = flags.Contains("prevote"),
            CheckQuorum = flags.Contains("checkquorum") || flags.Contains("lease"),
            ReadOnlyMode = flags.Contains("lease") ? ReadOnlyMode.LeaseBased : ReadOnlyMode.Safe,
            DisableProposalForwarding = flags.Contains("no-forwarding"),
            MaxInflightMessages = Value("inflight") is { } k ? int.Parse(k, CultureInfo.InvariantCulture) : 256,
            MaxSizePerMessageBytes = Value("max-msg-bytes") is { } b ? ulong.Parse(b, CultureInfo.InvariantCulture) : ulong.MaxValue,
            MaxUncommittedEntriesBytes = Value("max-uncommitted") is { } u ? ulong.Parse(u, CultureInfo.InvariantCulture) : 0,
            StepDownOnRemoval = !flags.Contains("no-step-down"),
            RandomSeed = id,
        };
    }

    private static void Tick(TestNode node, int count)
    {
        for (var i = 0; i < count; i++)
        {
            node.Node.Tick();
        }
    }

    private bool ProcessReady(ulong id, StringBuilder output)
    {
        var node = _nodes[id];
        if (!node.Node.HasReady())
        {
            return false;
        }

        var rd = node.Node.GetReady();
        TraceFormat.Ready(output, id, rd);
        node.Persist(rd);
        ApplyAndTrace(node, rd, output);
        node.Node.Advance();
        Send(rd.Messages.Concat(rd.MessagesAfterPersist));
        return true;
    }

    private void TakeReady(ulong id, StringBuilder output)
    {
        var node = _nodes[id];
        if (_held.ContainsKey(id) || !node.Node.HasReady())
        {
            throw new InvalidOperationException($"ready-take {id}: a Ready is already held, or there is none.");
        }

        var rd = node.Node.GetReady();
        TraceFormat.Ready(output, id, rd);
        node.Persist(rd);
        Send(rd.Messages.Concat(rd.MessagesAfterPersist));
        _held[id] = rd;
    }

    private void FinishReady(ulong id, StringBuilder output)
    {
        var node = _nodes[id];
        if (!_held.Remove(id, out var rd))
        {
            throw new InvalidOperationException($"ready-finish {id}: no Ready is held.");
        }

        output.AppendLine(FormattableString.Invariant($"> {id} applying held Ready"));
        ApplyAndTrace(node, rd, output);
        node.Node.Advance();
    }

    private void Send(IEnumerable<Message> messages)
    {
        foreach (var m in messages)
        {
            // A node that was never started (e.g. added to the configuration first) drops it.
            if (_inbox.TryGetValue(m.To, out var inbox))
            {
                inbox.Add(m);
            }
        }
    }

    private static void ApplyAndTrace(TestNode node, Ready rd, StringBuilder output)
    {
        var changesBefore = node.ConfChangesApplied.Count;
        node.Apply(rd);
        foreach (var (index, change, result) in node.ConfChangesApplied.Skip(changesBefore))
        {
            output.AppendLine(FormattableString.Invariant($"  applied conf change {index}: {change} => {result}"));
        }

        if (rd.Snapshot is not null)
        {
            output.AppendLine(FormattableString.Invariant($"  configuration from snapshot: {node.Config}"));
        }
    }

    private bool DeliverMessages(ulong id, bool drop, StringBuilder output)
    {
        var pending = _inbox[id];
        if (pending.Count == 0)
        {
            return false;
        }

        var messages = pending.ToArray();
        pending.Clear();
        output.AppendLine(FormattableString.Invariant($"> {id} receiving messages"));
        var node = _nodes[id];
        foreach (var m in messages)
        {
            if (drop || _group.GetValueOrDefault(m.From) != _group.GetValueOrDefault(m.To))
            {
                output.AppendLine("  dropped: " + TraceFormat.Message(m));
                if (m.Type == MessageType.Snapshot)
                {
                    _nodes[m.From].Node.ReportSnapshot(m.To, succeeded: false);
                }

                continue;
            }

            output.AppendLine("  " + TraceFormat.Message(m));
            try
            {
                node.Step(m);
            }
            catch (ProposalDroppedException ex)
            {
                output.AppendLine(CultureInfo.InvariantCulture, $"  error: proposal dropped ({ex.Reason})");
            }
            catch (ConfChangeRejectedException ex)
            {
                output.AppendLine(CultureInfo.InvariantCulture, $"  error: {ex.Message}");
            }
            catch (MessageRejectedException ex)
            {
                output.AppendLine(CultureInfo.InvariantCulture, $"  error: message rejected ({ex.Reason}): {ex.Message}");
            }

            if (m.Type == MessageType.Snapshot)
            {
                // The host reports the outcome of a snapshot send once the transport is done.
                _nodes[m.From].Node.ReportSnapshot(m.To, succeeded: true);
                output.AppendLine(FormattableString.Invariant($"  ({m.From} told: snapshot to {m.To} delivered)"));
            }
        }

        return true;
    }

    private void Stabilize(ulong[] ids, StringBuilder output)
    {
        for (var round = 0; round < 1000; round++)
        {
            var busy = false;
            foreach (var id in ids)
            {
                busy |= ProcessReady(id, output);
            }

            foreach (var id in ids)
            {
                busy |= DeliverMessages(id, drop: false, output);
            }

            if (!busy)
            {
                return;
            }
        }

        throw new InvalidOperationException("stabilize did not converge");
    }
}
