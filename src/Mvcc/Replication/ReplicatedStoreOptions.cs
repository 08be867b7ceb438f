using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// Settings of one member of a <see cref="ReplicatedStore"/>. Each property checks its own value
/// when set and throws <see cref="ArgumentOutOfRangeException"/> (or <see cref="ArgumentNullException"/>)
/// whose <see cref="ArgumentException.ParamName"/> is the property's name; the required
/// <see cref="MemberId"/> and <see cref="DataDirectory"/> and the rules between properties are
/// checked by <see cref="ReplicatedStore.StartAsync"/>, which throws <see cref="ArgumentException"/>
/// naming the options involved.
/// </summary>
/// <remarks>
/// <para>An immutable record with a parameterless constructor and <c>init</c> accessors (binds from
/// Microsoft.Extensions.Configuration); thread-safe to share.</para>
/// <para>What the store sets itself: in <see cref="Raft"/>, the <see cref="RaftNodeOptions.NodeId"/>
/// (= <see cref="MemberId"/>), <see cref="RaftNodeOptions.DataDirectory"/> (<c>raft/</c> under
/// <see cref="DataDirectory"/>), <see cref="RaftNodeOptions.InitialVoters"/> (from
/// <see cref="InitialMembers"/>), <see cref="RaftNodeOptions.FileSystem"/>,
/// <see cref="RaftNodeOptions.TimeProvider"/> and <see cref="RaftNodeOptions.Logger"/>; in
/// <see cref="Store"/>, <see cref="MvccStoreOptions.Durability"/> (always
/// <see cref="MvccDurability.NoSync"/>: the Raft log is the durability) and, when unset,
/// <see cref="MvccStoreOptions.Logger"/>.</para>
/// </remarks>
public sealed record ReplicatedStoreOptions
{
    /// <summary>Creates options with every default and no <see cref="MemberId"/> or <see cref="DataDirectory"/> yet (both required).</summary>
    public ReplicatedStoreOptions()
    {
    }

    /// <summary>Every default; set <see cref="MemberId"/>, <see cref="DataDirectory"/> and usually <see cref="InitialMembers"/> with a <c>with</c> expression.</summary>
    public static ReplicatedStoreOptions Default { get; } = new();

    /// <summary>
    /// This member's id (its Raft node id): unique in the cluster, never reused. Required: 0 (the
    /// default, "not set") is refused by <see cref="ReplicatedStore.StartAsync"/>.
    /// </summary>
    public ulong MemberId { get; init; }

    /// <summary>
    /// The member's directory: its Raft log in <c>raft/</c> and its store in <c>mvcc/</c> beneath it.
    /// Required: empty (the default) is refused by <see cref="ReplicatedStore.StartAsync"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to white space only (ParamName "DataDirectory").</exception>
    public string DataDirectory
    {
        get;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(DataDirectory));
            if (value.Length > 0 && string.IsNullOrWhiteSpace(value))
            {
                throw new ArgumentOutOfRangeException(nameof(DataDirectory), value, $"{nameof(DataDirectory)} must be a directory path, not white space.");
            }

            field = value;
        }
    } = string.Empty;

    /// <summary>
    /// The members of a new cluster, this one among them: used only when the data directory holds
    /// no log yet, to bootstrap it (the voters are these members; each starts with the same list,
    /// and the registry begins with it). Learners cannot be bootstrapped: add them with
    /// <see cref="ReplicatedStore.AddMemberAsync"/>. Null (the default) means join: the member starts
    /// empty and waits for a cluster that added it to send it its state. Ignored once the log exists.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Empty (ParamName "InitialMembers").</exception>
    /// <exception cref="ArgumentException">A null entry, a duplicate id, or a member that is invalid (zero id, bad peer URL, a learner); the message names it.</exception>
    public IReadOnlyList<MemberInfo>? InitialMembers
    {
        get;
        init
        {
            if (value is not null)
            {
                if (value.Count == 0)
                {
                    throw new ArgumentOutOfRangeException(nameof(InitialMembers), value.Count, $"{nameof(InitialMembers)} must list at least one member, or be null to join an existing cluster.");
                }

                var seen = new HashSet<ulong>();
                foreach (var member in value)
                {
                    MemberRegistry.Check(member, nameof(InitialMembers));
                    if (!seen.Add(member.Id))
                    {
                        throw new ArgumentException($"{nameof(InitialMembers)} lists member {member.Id} twice.", nameof(InitialMembers));
                    }

                    if (member.IsLearner)
                    {
                        throw new ArgumentException($"{nameof(InitialMembers)} lists member {member.Id} as a learner: a cluster is bootstrapped with voters only; add learners with {nameof(ReplicatedStore.AddMemberAsync)}.", nameof(InitialMembers));
                    }
                }

                value = [.. value];
            }

            field = value;
        }
    }

    /// <summary>
    /// The cluster's id. 0 (the default) means: derived from the initial members' ids (equal on
    /// every member started with the same <see cref="InitialMembers"/>), or learned from the cluster
    /// when joining. When set, the store refuses to start on data of another cluster.
    /// </summary>
    public ulong ClusterId { get; init; }

    /// <summary>Tuning of the Raft node (ticks, timeouts, snapshot policy, log). The store sets the fields listed in the remarks. Default <see cref="RaftNodeOptions.Default"/>.</summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Raft").</exception>
    // A fresh instance, never the shared RaftNodeOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public RaftNodeOptions Raft
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Raft));
    } = new();

    /// <summary>
    /// Tuning of the store (limits, batch sizes, leases, watches). Its durability is forced to
    /// <see cref="MvccDurability.NoSync"/>. Keep <see cref="MvccStoreOptions.MaxRequestBytes"/> and
    /// <see cref="MvccStoreOptions.MaxTxnOps"/> equal on every member: each member checks them again
    /// when it applies a command, so a member with smaller limits would refuse what the others apply.
    /// Default <see cref="MvccStoreOptions.Default"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException">Set to null (ParamName "Store").</exception>
    // A fresh instance, never the shared MvccStoreOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public MvccStoreOptions Store
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(Store));
    } = new();

    /// <summary>How often the leader runs the cross-member hash check; <see cref="TimeSpan.Zero"/> (the default) turns it off.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative (ParamName "HashCheckInterval").</exception>
    public TimeSpan HashCheckInterval
    {
        get;
        init
        {
            if (value < TimeSpan.Zero)
            {
                throw new ArgumentOutOfRangeException(nameof(HashCheckInterval), value, $"{nameof(HashCheckInterval)} must be zero (off) or positive.");
            }

            field = value;
        }
    }

    /// <summary>The disk; null means the real one (<see cref="PhysicalFileSystem"/>).</summary>
    public IFileSystem? FileSystem { get; init; }

    /// <summary>The clock of the Raft node (ticks, timeouts); null means <see cref="System.TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>
    /// Deterministic mode (the whole-cluster simulator, issue 18): the single-threaded scheduler the
    /// member runs on. Null (the default) is the normal mode (thread pool, a writer thread). When
    /// set, the store passes it to its Raft node (<see cref="RaftNodeOptions.Scheduler"/>) and to its
    /// <see cref="MvccStore"/> (<see cref="MvccStoreOptions.Scheduler"/>, with <see cref="TimeProvider"/>
    /// as the store's batch and watch-progress clock), starts its background work (term tracking,
    /// lease expiry, hash check) on it, and resumes every await of its own on it: the member then
    /// starts no thread and uses no thread-pool work. For a run that the seed alone decides, also set
    /// <see cref="TimeProvider"/> to a manual clock (FakeTimeProvider), <see cref="FileSystem"/> to a
    /// simulated disk, <c>Raft.Log.Wal.Threading</c> to <c>WalThreading.CallerThread</c>,
    /// <c>Raft.Raft.RandomSeed</c>, a transport that delivers on the same clock (InProcessNetwork with
    /// that TimeProvider and a seed), and call the member's API only from tasks on the scheduler.
    /// <see cref="ReplicatedStore.StartAsync"/> refuses a scheduler without <see cref="TimeProvider"/>
    /// (<see cref="ArgumentException"/>): the system clock's timers would fire on the thread pool.
    /// </summary>
    internal TaskScheduler? Scheduler { get; init; }

    /// <summary>Store rules this member breaks on purpose: only the simulator's broken-rule tests set any (<see cref="TestOnlyBrokenRules"/>; Raft's are <c>Raft.Raft.BrokenRules</c>).</summary>
    internal TestOnlyBrokenRules BrokenRules
    {
        get;
        init => field = value ?? throw new ArgumentNullException(nameof(BrokenRules));
    } = TestOnlyBrokenRules.None;

    /// <summary>Where the store, its Raft node and its B+tree log; null means no logging.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Checks what no single setter can. Called by <see cref="ReplicatedStore.StartAsync"/>.</summary>
    /// <exception cref="ArgumentException">A rule is broken; the message names the options involved.</exception>
    internal void Validate()
    {
        if (MemberId == 0)
        {
            throw new ArgumentException($"{nameof(MemberId)} must be set (at least 1).", nameof(MemberId));
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException($"{nameof(DataDirectory)} must be set.", nameof(DataDirectory));
        }

        if (InitialMembers is { } members && !members.Any(m => m.Id == MemberId))
        {
            throw new ArgumentException($"{nameof(InitialMembers)} must include this member ({nameof(MemberId)} {MemberId}).", nameof(InitialMembers));
        }

        if (Scheduler is not null && TimeProvider is null)
        {
            throw new ArgumentException($"{nameof(Scheduler)} (deterministic mode) needs {nameof(TimeProvider)} set (a manual clock): the system clock's timers fire on the thread pool.", nameof(TimeProvider));
        }

        if (Raft.NodeId != 0 && Raft.NodeId != MemberId)
        {
            throw new ArgumentException($"{nameof(Raft)}.{nameof(RaftNodeOptions.NodeId)} ({Raft.NodeId}) must be 0 or equal {nameof(MemberId)} ({MemberId}).", nameof(Raft));
        }
    }
}
