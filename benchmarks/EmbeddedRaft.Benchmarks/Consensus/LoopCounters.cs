namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>Per node (in node order): loop turns, messages handed to the transport, Readies written, apply pipeline turns.</summary>
internal sealed record LoopCounters(ulong[] Ids, long[] LoopTurns, long[] MessagesSent, long[] ReadiesWritten, long[] ApplyTurns, ulong LeaderId)
{
    /// <summary>The difference since <paramref name="before"/>, per applied proposal.</summary>
    public string Describe(LoopCounters before, long proposals)
    {
        var per = (double)Math.Max(1, proposals);
        return string.Join(Environment.NewLine, Ids.Select((id, i) => string.Create(
            System.Globalization.CultureInfo.InvariantCulture,
            $"  node {id}{(id == LeaderId ? " (leader)" : string.Empty)}: per proposal {(LoopTurns[i] - before.LoopTurns[i]) / per:F3} loop turns, {(MessagesSent[i] - before.MessagesSent[i]) / per:F3} messages sent, {(ReadiesWritten[i] - before.ReadiesWritten[i]) / per:F4} Readies written, {(ApplyTurns[i] - before.ApplyTurns[i]) / per:F4} apply turns")));
    }
}
