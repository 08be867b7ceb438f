namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>One member's answer to the hash check started at log index <paramref name="CheckIndex"/>.</summary>
internal sealed record HashReport(ulong CheckIndex, ulong MemberId, long Revision, long CompactRevision, uint Hash);
