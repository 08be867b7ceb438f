using System.Globalization;
using System.Text;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// An independent model of what a durable Raft log holds, one write-ahead-log record at a time:
/// plain lists, no positions, no cache. The crash tests compare a reopened log with the model's
/// state after each prefix of the records written.
/// </summary>
internal sealed class LogModel
{
    public List<Entry> Entries { get; private set; } = [];

    public ulong Offset { get; private set; }

    public ulong OffsetTerm { get; private set; }

    public HardState HardState { get; private set; }

    public SnapshotMetadata? Snapshot { get; private set; }

    public ConfState Bootstrap { get; private set; } = ConfState.Empty;

    public ulong LastIndex => Offset + (ulong)Entries.Count;

    public ulong TermAt(ulong index) => index == Offset ? OffsetTerm : Entries[(int)(index - Offset - 1)].Term;

    public LogModel Clone() => new()
    {
        Entries = [.. Entries],
        Offset = Offset,
        OffsetTerm = OffsetTerm,
        HardState = HardState,
        Snapshot = Snapshot,
        Bootstrap = Bootstrap,
    };

    public void SetBootstrap(ConfState conf) => Bootstrap = conf;

    /// <summary>One entry record: it replaces the entry at its index and every later one.</summary>
    public void AppendEntry(Entry entry)
    {
        if (entry.Index <= Offset)
        {
            throw new InvalidOperationException("The model never writes an entry at or below its start.");
        }

        int keep = (int)(entry.Index - Offset - 1);
        if (keep > Entries.Count)
        {
            throw new InvalidOperationException($"Gap in the model at {entry.Index}.");
        }

        Entries.RemoveRange(keep, Entries.Count - keep);
        Entries.Add(entry);
    }

    public void SetHardState(HardState state) => HardState = state;

    public void Install(SnapshotMetadata metadata)
    {
        Entries.Clear();
        Offset = metadata.Index;
        OffsetTerm = metadata.Term;
        Snapshot = metadata;
    }

    public void Compact(SnapshotMetadata metadata, ulong compactIndex)
    {
        ulong term = TermAt(compactIndex);
        Entries.RemoveRange(0, (int)(compactIndex - Offset));
        Offset = compactIndex;
        OffsetTerm = term;
        Snapshot = metadata;
    }

    /// <summary>
    /// Everything a reader of the log can observe, as one comparable string. A reopened log is the
    /// live one: the entries retained below the snapshot survive the reopen.
    /// </summary>
    public string Fingerprint()
    {
        var snapshot = Snapshot ?? new SnapshotMetadata(0, 0, Bootstrap);
        return Describe(HardState, snapshot, Offset, OffsetTerm, Entries);
    }

    public static string Describe(HardState hardState, SnapshotMetadata snapshot, ulong offset, ulong offsetTerm, IEnumerable<Entry> entries)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"hs={hardState} snap={snapshot.Index}/{snapshot.Term} {snapshot.ConfState} start={offset}/{offsetTerm} entries:");
        foreach (var entry in entries)
        {
            text.Append(CultureInfo.InvariantCulture, $" {entry.Index}/{entry.Term}/{entry.Type}/{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(entry.Data.Span))[..8]}");
        }

        return text.ToString();
    }
}
