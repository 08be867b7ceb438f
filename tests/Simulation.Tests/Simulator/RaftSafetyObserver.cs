using System.Globalization;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// Raft's safety properties checked from every message the members send, as the messages leave
/// (whether or not the network then delivers them): at most one leader per term (Raft §5.2), a
/// leader never rewrites its own log within its term (Leader Append-Only, §5.3), and an entry once
/// committed at an index is the entry every later leader commits there (Log Matching and Leader
/// Completeness, §5.3–5.4: what was committed is never lost or replaced).
/// </summary>
/// <remarks>
/// What a message proves: an append, heartbeat or snapshot from X in term T is sent only by T's
/// leader, so X led T. An append carries entries of its sender's log; a leader's log only grows
/// during its term, so every entry seen from T's leader is in its log for the rest of T. The commit
/// index a leader sends is at most its own commit index, so every entry of T's leader at or below
/// it is committed. Entries and commit indexes may be seen in either order; each is matched against
/// the other when it arrives. Not thread-safe: the simulator runs on one thread.
/// </remarks>
internal sealed class RaftSafetyObserver
{
    private readonly Dictionary<ulong, ulong> _leaderOfTerm = [];
    private readonly Dictionary<ulong, Dictionary<ulong, (ulong Term, ulong Hash)>> _logOfTerm = [];
    private readonly Dictionary<ulong, ulong> _commitOfTerm = [];
    private readonly Dictionary<ulong, (ulong Term, ulong Hash, ulong LeaderTerm)> _committed = [];
    private readonly List<string> _violations = [];

    /// <summary>What broke, in the order seen (empty while every rule held).</summary>
    public IReadOnlyList<string> Violations => _violations;

    /// <summary>The highest index known committed.</summary>
    public ulong HighestCommittedIndex { get; private set; }

    /// <summary>Distinct terms that had a leader.</summary>
    public int TermsWithLeader => _leaderOfTerm.Count;

    /// <summary>Checks and remembers one message as its sender hands it to the network.</summary>
    public void OnSend(Message message)
    {
        if (message.Type is not (MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot))
        {
            return;
        }

        ulong term = message.Term;
        if (_leaderOfTerm.TryGetValue(term, out ulong leader))
        {
            if (leader != message.From)
            {
                _violations.Add(string.Create(CultureInfo.InvariantCulture, $"two leaders in term {term}: member {leader} and member {message.From} (seen sending {message.Type})"));
                return;
            }
        }
        else
        {
            _leaderOfTerm[term] = message.From;
        }

        if (message.Type != MessageType.Append)
        {
            if (message.Type == MessageType.Heartbeat)
            {
                OnCommit(term, message.Commit);
            }

            return;
        }

        if (!_logOfTerm.TryGetValue(term, out var log))
        {
            log = [];
            _logOfTerm[term] = log;
        }

        foreach (var entry in message.Entries.Span)
        {
            var seen = (entry.Term, HashOf(entry));
            if (log.TryGetValue(entry.Index, out var earlier))
            {
                if (earlier != seen)
                {
                    _violations.Add(string.Create(CultureInfo.InvariantCulture, $"the leader of term {term} (member {message.From}) rewrote its own log at index {entry.Index}: term {earlier.Term} hash {earlier.Hash:x16}, then term {seen.Term} hash {seen.Item2:x16}"));
                }

                continue;
            }

            log[entry.Index] = seen;
            if (_commitOfTerm.TryGetValue(term, out ulong commit) && entry.Index <= commit)
            {
                RecordCommitted(term, entry.Index, seen);
            }
        }

        OnCommit(term, message.Commit);
    }

    private void OnCommit(ulong term, ulong commit)
    {
        _commitOfTerm.TryGetValue(term, out ulong before);
        if (commit <= before)
        {
            return;
        }

        _commitOfTerm[term] = commit;
        if (_logOfTerm.TryGetValue(term, out var log))
        {
            // The log of a term is small (one seed's worth): scanning it beats keeping it sorted.
            foreach (var (index, entry) in log)
            {
                if (index > before && index <= commit)
                {
                    RecordCommitted(term, index, entry);
                }
            }
        }
    }

    private void RecordCommitted(ulong leaderTerm, ulong index, (ulong Term, ulong Hash) entry)
    {
        if (_committed.TryGetValue(index, out var earlier))
        {
            if (earlier.Term != entry.Term || earlier.Hash != entry.Hash)
            {
                _violations.Add(string.Create(CultureInfo.InvariantCulture, $"committed entry lost: index {index} was committed as term {earlier.Term} (hash {earlier.Hash:x16}, seen under the leader of term {earlier.LeaderTerm}), but the leader of term {leaderTerm} (member {_leaderOfTerm[leaderTerm]}) committed term {entry.Term} (hash {entry.Hash:x16}) there"));
            }

            return;
        }

        _committed[index] = (entry.Term, entry.Hash, leaderTerm);
        HighestCommittedIndex = Math.Max(HighestCommittedIndex, index);
    }

    // FNV-1a over the entry's type and data: equal entries hash equal, different ones almost never.
    private static ulong HashOf(Entry entry)
    {
        ulong hash = 14695981039346656037UL;
        hash = (hash ^ (ulong)entry.Type) * 1099511628211UL;
        foreach (byte b in entry.Data.Span)
        {
            hash = (hash ^ b) * 1099511628211UL;
        }

        return hash;
    }
}
