using System.Text;
using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Scenarios;

/// <summary>Stable, compact text for messages, entries and Readies in scenario traces.</summary>
internal static class TraceFormat
{
    public static string Entry(in Entry e)
    {
        if (e.Type == EntryType.ConfChange)
        {
            return $"{e.Term}/{e.Index} ConfChange {MessageCodec.DecodeConfChange(e.Data.Span)}";
        }

        var kind = e.Type == EntryType.Normal ? string.Empty : $" {e.Type}";
        return $"{e.Term}/{e.Index}{kind} \"{Encoding.UTF8.GetString(e.Data.Span)}\"";
    }

    public static string Entries(ReadOnlySpan<Entry> entries)
    {
        var parts = new List<string>(entries.Length);
        foreach (ref readonly var e in entries)
        {
            parts.Add(Entry(e));
        }

        return "[" + string.Join(", ", parts) + "]";
    }

    public static string Context(ReadOnlyMemory<byte> context, bool heartbeat = false)
    {
        if (heartbeat && ReadOnlyQueue.TryDecodeHeartbeatContext(context.Span, out var round, out var sentTick))
        {
            var roundText = round == 0 ? string.Empty : $"round#{round}";
            return sentTick is { } tick ? $"{roundText}{(round == 0 ? string.Empty : " ")}sent@{tick}" : roundText;
        }

        return $"\"{Encoding.UTF8.GetString(context.Span)}\"";
    }

    public static string Message(Message m)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInvariant($"{m.From}->{m.To} {m.Type} Term:{m.Term}"));
        switch (m.Type)
        {
            case MessageType.Append:
            case MessageType.Vote:
            case MessageType.PreVote:
                sb.Append(CultureInvariant($" Log:{m.LogTerm}/{m.Index}"));
                break;
            case MessageType.ProposalRefused:
                sb.Append(CultureInvariant($" Refusal:{m.RejectHint}"));
                break;
            case MessageType.AppendResponse:
            case MessageType.ReadIndexResponse:
                sb.Append(CultureInvariant($" Index:{m.Index}"));
                break;
            default:
                break;
        }

        if (m.Commit != 0 || m.Type is MessageType.Append or MessageType.Heartbeat)
        {
            sb.Append(CultureInvariant($" Commit:{m.Commit}"));
        }

        if (m.Reject)
        {
            sb.Append(m.Type == MessageType.AppendResponse
                ? CultureInvariant($" Rejected (Hint: {m.RejectHint}/{m.LogTerm})")
                : " Rejected");
        }

        if (!m.Entries.IsEmpty)
        {
            sb.Append(" Entries:").Append(Entries(m.Entries.Span));
        }

        if (m.Snapshot is { } s)
        {
            sb.Append(CultureInvariant($" Snapshot:{s.Term}/{s.Index} {s.ConfState}"));
        }

        if (!m.Context.IsEmpty)
        {
            sb.Append(" Context:").Append(Context(m.Context, m.Type is MessageType.Heartbeat or MessageType.HeartbeatResponse));
        }

        return sb.ToString();
    }

    public static void Ready(StringBuilder output, ulong id, Ready rd)
    {
        output.AppendLine(CultureInvariant($"> {id} handling Ready"));
        if (rd.SoftState is { } soft)
        {
            output.AppendLine(CultureInvariant($"  Lead:{soft.Lead} State:{soft.Role}"));
        }

        if (rd.HardState is { } hard)
        {
            output.AppendLine(CultureInvariant($"  HardState Term:{hard.Term} Vote:{hard.Vote} Commit:{hard.Commit}"));
        }

        if (!rd.Entries.IsEmpty)
        {
            output.AppendLine("  Entries: " + Entries(rd.Entries.Span));
        }

        if (rd.Snapshot is { } snapshot)
        {
            output.AppendLine(CultureInvariant($"  Snapshot {snapshot.Term}/{snapshot.Index} {snapshot.ConfState}"));
        }

        if (!rd.CommittedEntries.IsEmpty)
        {
            output.AppendLine("  CommittedEntries: " + Entries(rd.CommittedEntries.Span));
        }

        foreach (var m in rd.Messages)
        {
            output.AppendLine("  send: " + Message(m));
        }

        foreach (var m in rd.MessagesAfterPersist)
        {
            output.AppendLine("  send after persist: " + Message(m));
        }

        foreach (var rs in rd.ReadStates)
        {
            output.AppendLine(CultureInvariant($"  ReadState Index:{rs.Index} Context:{Context(rs.RequestContext)}"));
        }

        foreach (var refused in rd.RefusedProposals)
        {
            var reason = refused.Refusal switch
            {
                ProposalDroppedException dropped => dropped.Reason.ToString(),
                ConfChangeRejectedException rejected => rejected.Reason.ToString(),
                _ => refused.Refusal.GetType().Name,
            };
            output.AppendLine(CultureInvariant($"  RefusedProposal by {refused.LeaderId} ({reason}): {Entries(refused.Entries.Span)}"));
        }

        if (rd.PeersNeedingSnapshot.Count > 0)
        {
            output.AppendLine("  PeersNeedingSnapshot: " + string.Join(' ', rd.PeersNeedingSnapshot));
        }
    }

    private static string CultureInvariant(FormattableString s) => FormattableString.Invariant(s);
}
