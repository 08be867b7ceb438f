using System.Globalization;

namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>
/// Everything one watch stream received, for <see cref="WatchChecker"/>: what it asked for, each
/// response in the order delivered, and how it ended. A watcher that resumes after a cancel, a
/// compaction or its member's crash opens a new stream: record that as a new observation whose
/// <see cref="ResumedFrom"/> names this one.
/// </summary>
/// <param name="WatcherId">Unique in the run ("w3.2": watcher 3, its second stream); named in violations.</param>
/// <param name="MemberId">The member it watched on (for the report only).</param>
/// <param name="Key">The watched key, or the start of the range (etcd's conventions).</param>
/// <param name="RangeEnd">Null for the single key <paramref name="Key"/>; "\0" for every key from <paramref name="Key"/> on; otherwise the range [Key, RangeEnd) in ordinal order.</param>
/// <param name="StartRevision">The first revision the watch reports: the request's start revision, or for 0 the store's answer (WatchStream.StartRevision).</param>
/// <param name="Responses">Every response received, in order.</param>
/// <param name="End">How it ended.</param>
public sealed record WatchObservation(
    string WatcherId,
    ulong MemberId,
    string Key,
    string? RangeEnd,
    long StartRevision,
    IReadOnlyList<WatchResponseObservation> Responses,
    WatchEnd End)
{
    /// <summary>The request's NoPut filter (put events are not sent).</summary>
    public bool NoPut { get; init; }

    /// <summary>The request's NoDelete filter (delete events are not sent).</summary>
    public bool NoDelete { get; init; }

    /// <summary>The request's prev_kv flag (events carry the key as it was before).</summary>
    public bool PrevKv { get; init; }

    /// <summary>When <see cref="End"/> is <see cref="WatchEnd.Compacted"/>: the compact revision the store reported.</summary>
    public long CompactRevision { get; init; }

    /// <summary>The <see cref="WatcherId"/> of the stream this one resumes (it must start at that one's last covered revision + 1), or null.</summary>
    public string? ResumedFrom { get; init; }

    /// <summary>Whether <paramref name="key"/> is in the watched range.</summary>
    public bool Covers(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (RangeEnd is null)
        {
            return string.Equals(key, Key, StringComparison.Ordinal);
        }

        return string.CompareOrdinal(key, Key) >= 0 && (RangeEnd == "\0" || string.CompareOrdinal(key, RangeEnd) < 0);
    }

    /// <summary>
    /// The revision through which this stream delivered every event of its range: the last response's
    /// header revision, or <see cref="StartRevision"/> - 1 when it received nothing.
    /// </summary>
    public long CoveredThrough => Responses.Count == 0 ? StartRevision - 1 : Responses.Max(r => r.HeaderRevision);

    /// <inheritdoc/>
    public override string ToString()
    {
        string range = RangeEnd is null ? Key : RangeEnd == "\0" ? $"[{Key}..)" : $"[{Key}..{RangeEnd})";
        string flags = (NoPut ? " noput" : "") + (NoDelete ? " nodelete" : "") + (PrevKv ? " prevkv" : "");
        return string.Create(CultureInfo.InvariantCulture, $"watcher {WatcherId} on member {MemberId}, {range} from {StartRevision}{flags}, {Responses.Count} responses, {End}");
    }
}
