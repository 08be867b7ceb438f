namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The first byte of every command a <see cref="ReplicatedStore"/> proposes: what the rest of the
/// bytes encode (<see cref="CommandCodec"/>). The byte is the format version too: a command whose
/// encoding changes gets a new kind, and a kind no member knows stops that member (fail-stop)
/// instead of being skipped, since the members that know it would apply it.
/// </summary>
/// <remarks>
/// Values are persisted in every member's Raft log: never renumber or reuse one. 1-15: the core
/// (KV, compaction, member registry); 16-31: leases (ReplicatedStore.Leases.cs); 32-47: the hash
/// check and alarms (ReplicatedStore.HashCheck.cs, ReplicatedStore.Maintenance.cs).
/// </remarks>
internal enum CommandKind : byte
{
    /// <summary>A <see cref="PutRequest"/>.</summary>
    Put = 1,

    /// <summary>A <see cref="DeleteRangeRequest"/>.</summary>
    DeleteRange = 2,

    /// <summary>A <see cref="TxnRequest"/> (operations nested to at most <see cref="CommandCodec.MaxTxnDepth"/> levels).</summary>
    Txn = 3,

    /// <summary>A compaction: the revision and the physical flag.</summary>
    Compact = 4,

    /// <summary>A member added to the registry, or its entry replaced (promotion): a <see cref="MemberInfo"/>.</summary>
    MemberPut = 5,

    /// <summary>A member removed from the registry: its id.</summary>
    MemberRemove = 6,

    /// <summary>A lease granted: its id (chosen by the proposer) and TTL in seconds (<see cref="LeaseCommands"/>).</summary>
    LeaseGrant = 16,

    /// <summary>A lease revoked by a client: its id.</summary>
    LeaseRevoke = 17,

    /// <summary>A lease kept alive: its id. Every member renews it on its own clock when applying.</summary>
    LeaseKeepAlive = 18,

    /// <summary>A lease the leader found expired, revoked: its id. Does nothing when an earlier entry revoked it.</summary>
    LeaseExpire = 19,

    /// <summary>A cross-member hash check begins: the revision every member hashes (<see cref="HashCheckCommands"/>).</summary>
    HashCheckStart = 32,

    /// <summary>One member's hash for a check: the check's log index, the member, the revision, the compact revision, the hash.</summary>
    HashCheckReport = 33,

    /// <summary>Alarms cleared on every member (etcd's alarm deactivation): the <see cref="StoreAlarms"/> flags as a varint (ReplicatedStore.Maintenance.cs).</summary>
    AlarmDisarm = 34,
}
