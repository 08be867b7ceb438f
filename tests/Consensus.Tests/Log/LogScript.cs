using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// A seeded sequence of calls a Raft host makes on its durable log (bootstrap, saves with suffix
/// overwrites and unsynced writes, own snapshots with compaction, installed leader snapshots),
/// generated against a <see cref="LogModel"/>, with the model's state after every record the log
/// writes and how many records each call writes.
/// </summary>
internal sealed class LogScript
{
    private LogScript(List<Func<DurableRaftLog, Task>> calls, List<int> recordsAfterCall, List<bool> callIsDurable, List<string> states, string finalLiveState, ulong retainedEntries)
    {
        Calls = calls;
        RecordsAfterCall = recordsAfterCall;
        CallIsDurable = callIsDurable;
        States = states;
        FinalLiveState = finalLiveState;
        RetainedEntries = retainedEntries;
    }

    public IReadOnlyList<Func<DurableRaftLog, Task>> Calls { get; }

    /// <summary>The number of records written once call i has returned.</summary>
    public IReadOnlyList<int> RecordsAfterCall { get; }

    /// <summary>Whether call i makes every record before it durable when it returns.</summary>
    public IReadOnlyList<bool> CallIsDurable { get; }

    /// <summary>The live log's fingerprint after the whole script (with the entries retained below its snapshot).</summary>
    public string FinalLiveState { get; }

    /// <summary>The fingerprint of a log reopened after j records (States[0]: nothing written).</summary>
    public IReadOnlyList<string> States { get; }

    public ulong RetainedEntries { get; }

    public static LogScript Generate(int seed, int callCount)
    {
        var random = new Random(seed);
        var model = new LogModel();
        var calls = new List<Func<DurableRaftLog, Task>>();
        var recordsAfter = new List<int>();
        var durable = new List<bool>();
        var states = new List<string> { model.Fingerprint() };
        ulong retained = random.Next(3) switch { 0 => 0UL, 1 => 5UL, _ => 40UL };
        ulong term = 1;
        var conf = new ConfState([1, 2, 3]);

        void Record(Action<LogModel> change)
        {
            change(model);
            states.Add(model.Fingerprint());
        }

        void Done(bool isDurable)
        {
            recordsAfter.Add(states.Count - 1);
            durable.Add(isDurable);
        }

        if (random.Next(10) < 7)
        {
            calls.Add(log => log.BootstrapAsync(conf).AsTask());
            Record(m => m.SetBootstrap(conf));
            Done(true);
        }

        for (int call = 0; call < callCount; call++)
        {
            ulong snapshotIndex = model.Snapshot?.Index ?? 0;
            int kind = random.Next(100);
            if (kind < 78 || model.LastIndex == model.Offset)
            {
                ulong lowestOverwrite = Math.Max(model.HardState.Commit, model.Offset) + 1;
                ulong start = model.LastIndex + 1;
                if (model.LastIndex >= lowestOverwrite && random.Next(4) == 0)
                {
                    start = lowestOverwrite + (ulong)random.Next((int)(model.LastIndex - lowestOverwrite + 1));
                    term++; // a new leader's entries replace the uncommitted suffix
                }
                else if (random.Next(10) == 0)
                {
                    term++;
                }

                int count = random.Next(9);
                var entries = new Entry[count];
                for (int i = 0; i < count; i++)
                {
                    var data = new byte[random.Next(1, 200)];
                    random.NextBytes(data);
                    entries[i] = new Entry(term, start + (ulong)i, EntryType.Normal, data);
                }

                ulong newLast = count > 0 ? start + (ulong)count - 1 : model.LastIndex;
                HardState? hardState = null;
                if (random.Next(10) < 7 || count == 0)
                {
                    var previous = model.HardState;
                    ulong commitCeiling = Math.Max(previous.Commit, newLast);
                    ulong commit = previous.Commit + (ulong)random.Next((int)(commitCeiling - previous.Commit + 1));
                    ulong vote = previous.Term == term ? previous.Vote : (ulong)random.Next(4);
                    if (previous.Term == term && previous.Vote == 0)
                    {
                        vote = (ulong)random.Next(4);
                    }

                    hardState = new HardState(term, vote, commit);
                }

                bool sync = random.Next(10) < 7;
                calls.Add(log => log.SaveAsync(hardState, entries, sync).AsTask());
                foreach (var entry in entries)
                {
                    Record(m => m.AppendEntry(entry));
                }

                if (hardState is { } state)
                {
                    Record(m => m.SetHardState(state));
                }

                Done(sync);
            }
            else if (kind < 92 && model.HardState.Commit > snapshotIndex && model.HardState.Commit > model.Offset)
            {
                ulong index = snapshotIndex + 1 + (ulong)random.Next((int)(model.HardState.Commit - snapshotIndex));
                var metadata = new SnapshotMetadata(index, model.TermAt(index), conf);
                ulong compactIndex = Math.Max(model.Offset, index - Math.Min(index, retained));
                int dataBytes = random.Next(1, 20_000);
                calls.Add(async log =>
                {
                    await LogTestKit.SaveDataAsync(log, metadata, dataBytes);
                    await log.CompactAsync(metadata);
                });
                var hardState = model.HardState;
                Record(m => m.Compact(metadata, compactIndex));
                if (!hardState.IsEmpty)
                {
                    Record(m => m.SetHardState(hardState));
                }

                Done(true);
            }
            else
            {
                term++;
                ulong index = Math.Max(model.LastIndex, model.HardState.Commit) + 1 + (ulong)random.Next(20);
                var installed = new ConfState([1, 2, 3, 4]);
                var metadata = new SnapshotMetadata(index, term, installed);
                int dataBytes = random.Next(1, 20_000);
                calls.Add(async log =>
                {
                    await LogTestKit.SaveDataAsync(log, metadata, dataBytes);
                    await log.ApplySnapshotAsync(metadata);
                });
                Record(m => m.Install(metadata));
                Done(true);
            }
        }

        return new LogScript(calls, recordsAfter, durable, states, model.Fingerprint(), retained);
    }

    /// <summary>What a reopened log holds, in the model's terms.</summary>
    public static string Fingerprint(DurableRaftLog log)
    {
        ulong first = log.FirstIndex();
        ulong last = log.LastIndex();
        var entries = first > last ? [] : log.Entries(first, last + 1, ulong.MaxValue).ToArray();
        return LogModel.Describe(log.InitialState().HardState, log.Snapshot(), first - 1, log.Term(first - 1), entries);
    }
}
