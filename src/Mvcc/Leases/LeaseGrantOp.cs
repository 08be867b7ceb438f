namespace EmbeddedRaft.Mvcc.Leases;

/// <summary>A lease grant queued for the writer: the id (0: the store chooses) and the TTL asked for.</summary>
internal sealed record LeaseGrantOp(long Id, long TtlSeconds);
