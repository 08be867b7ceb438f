using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport.Tcp;

namespace EmbeddedRaft.Mvcc.Replication;

/// <content>
/// Cluster membership: the member registry (names and URLs, replicated through the log with the
/// data) beside Raft's own configuration (changed through the node's membership calls).
/// </content>
/// <remarks>
/// A change is two log entries: the registry entry and the configuration change. An addition
/// writes the registry first (so every member, and a TCP transport, knows the new member's
/// address before the leader starts sending to it) and rolls it back when Raft refuses the
/// change; a promotion or removal changes the configuration first and the registry after. If the
/// second step fails (no leader, timeout), repeating the call completes it: each step is skipped
/// when already done.
/// </remarks>
public sealed partial class ReplicatedStore
{
    /// <summary>The cluster's members, linearizably: as of a read point the leader confirmed.</summary>
    /// <exception cref="NoLeaderException">No leader confirmed a read point.</exception>
    /// <exception cref="TimeoutException">The leader did not confirm a read point in time.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<IReadOnlyList<MemberInfo>> MemberListAsync(CancellationToken cancellationToken = default)
    {
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        return _registry.List();
    }

    /// <summary>
    /// Adds <paramref name="member"/> to the cluster — as a learner when <see cref="MemberInfo.IsLearner"/>,
    /// else as a voter — and returns the members once the change is applied here. Start the new
    /// member afterwards with <see cref="ReplicatedStoreOptions.InitialMembers"/> null: it receives
    /// the state from the leader. Over a <see cref="TcpTransport"/>, give the new member's transport
    /// the current members' addresses (<see cref="TcpTransportOptions.Peers"/>, as etcd's
    /// <c>--initial-cluster</c> for an existing cluster): a transport accepts only known peers, and
    /// the new member learns the registry only from what the leader sends it.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="member"/> is null.</exception>
    /// <exception cref="ArgumentException">A zero id, no or a malformed peer URL (the message quotes it), or a member with this id already registered differently.</exception>
    /// <exception cref="ConfChangeRejectedException">Raft refused the change (another change is pending, the id was removed before); the registry entry was rolled back.</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">A step was dropped or timed out; repeat the call to complete it.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<IReadOnlyList<MemberInfo>> AddMemberAsync(MemberInfo member, CancellationToken cancellationToken = default)
    {
        MemberRegistry.Check(member, nameof(member));
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        bool registered = false;
        if (_registry.Members.TryGetValue(member.Id, out var existing))
        {
            if (!existing.Equals(member))
            {
                throw new ArgumentException($"Member {member.Id} is registered already, as {existing}.", nameof(member));
            }
        }
        else
        {
            ThrowIfRefused(await Node.ProposeAsync(CommandCodec.EncodeMemberPut(member), cancellationToken).ConfigureAwait(ResumeOnScheduler));
            registered = true;
        }

        var config = Node.Status.Raft.Config;
        bool inConfig = member.IsLearner ? config.Learners.Contains(member.Id) : config.Voters.Contains(member.Id);
        if (!inConfig)
        {
            try
            {
                if (member.IsLearner)
                {
                    await Node.AddLearnerAsync(member.Id, cancellationToken).ConfigureAwait(ResumeOnScheduler);
                }
                else
                {
                    await Node.AddVoterAsync(member.Id, cancellationToken).ConfigureAwait(ResumeOnScheduler);
                }
            }
            catch (ConfChangeRejectedException) when (registered)
            {
                // Raft will not have it: neither should the registry.
                ThrowIfRefused(await Node.ProposeAsync(CommandCodec.EncodeMemberRemove(member.Id), cancellationToken).ConfigureAwait(ResumeOnScheduler));
                throw;
            }
        }

        return _registry.List();
    }

    /// <summary>Turns learner <paramref name="id"/> into a voter and returns the members once the change is applied here.</summary>
    /// <exception cref="ArgumentException"><paramref name="id"/> is not a registered member, or is a voter already.</exception>
    /// <exception cref="ConfChangeRejectedException">Raft refused the promotion (for example, the learner is not caught up enough, or another change is pending).</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">A step was dropped or timed out; repeat the call to complete it.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<IReadOnlyList<MemberInfo>> PromoteMemberAsync(ulong id, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfZero(id);
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        if (!_registry.Members.TryGetValue(id, out var member))
        {
            throw new ArgumentException($"Member {id} is not registered.", nameof(id));
        }

        if (!member.IsLearner)
        {
            throw new ArgumentException($"Member {id} is a voter already.", nameof(id));
        }

        if (Node.Status.Raft.Config.Learners.Contains(id))
        {
            await Node.PromoteLearnerAsync(id, cancellationToken).ConfigureAwait(ResumeOnScheduler);
        }

        ThrowIfRefused(await Node.ProposeAsync(CommandCodec.EncodeMemberPut(member with { IsLearner = false }), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return _registry.List();
    }

    /// <summary>
    /// Removes member <paramref name="id"/> for good (its id is never reused) and returns the members
    /// once the change is applied here. Removing this member itself is allowed: it then stops taking
    /// part (dispose it).
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="id"/> is not a registered member.</exception>
    /// <exception cref="ConfChangeRejectedException">Raft refused the removal (another change is pending, or it would leave no voter).</exception>
    /// <exception cref="NoLeaderException">No leader is known.</exception>
    /// <exception cref="ProposalDroppedException">A step was dropped or timed out; repeat the call to complete it.</exception>
    /// <exception cref="NodeStoppedException">The member stopped.</exception>
    public async ValueTask<IReadOnlyList<MemberInfo>> RemoveMemberAsync(ulong id, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfZero(id);
        await Node.ReadIndexAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        if (!_registry.Members.ContainsKey(id))
        {
            throw new ArgumentException($"Member {id} is not registered.", nameof(id));
        }

        var config = Node.Status.Raft.Config;
        if (config.Voters.Contains(id) || config.Learners.Contains(id) || config.VotersOutgoing.Contains(id) || config.LearnersNext.Contains(id))
        {
            await Node.RemoveMemberAsync(id, cancellationToken).ConfigureAwait(ResumeOnScheduler);
        }

        ThrowIfRefused(await Node.ProposeAsync(CommandCodec.EncodeMemberRemove(id), cancellationToken).ConfigureAwait(ResumeOnScheduler));
        return _registry.List();
    }

    /// <summary>Loads the registry from the store; bootstraps it from the initial members on a new member; checks the cluster id.</summary>
    private async ValueTask LoadRegistryAsync(CancellationToken cancellationToken)
    {
        var store = Mvcc;
        _registry.Load(store.ReadReplicaMeta());
        if (_registry.ClusterId == 0 && _options.InitialMembers is { } initial && store.ConsistentIndex == 0)
        {
            // Every bootstrapping member writes the same registry (from the same list) before any
            // entry is applied, at consistent index 0: it is part of the initial state, like the
            // bootstrap configuration in the log. Synced, since no log entry would replay it.
            ulong clusterId = _options.ClusterId != 0 ? _options.ClusterId : MemberRegistry.DeriveClusterId(initial.Select(m => m.Id));
            var (clusterKey, clusterValue) = _registry.SetClusterId(clusterId);
            await store.PutReplicaMetaAsync(clusterKey, clusterValue, 0).ConfigureAwait(ResumeOnScheduler);
            foreach (var member in initial)
            {
                var (key, value) = _registry.Put(member);
                await store.PutReplicaMetaAsync(key, value, 0).ConfigureAwait(ResumeOnScheduler);
            }

            await store.SyncAsync(cancellationToken).ConfigureAwait(ResumeOnScheduler);
        }

        if (_options.ClusterId != 0 && _registry.ClusterId != 0 && _registry.ClusterId != _options.ClusterId)
        {
            throw new InvalidOperationException($"The store in '{_options.DataDirectory}' belongs to cluster {_registry.ClusterId:x16}, not to {nameof(ReplicatedStoreOptions.ClusterId)} {_options.ClusterId:x16}.");
        }
    }

    private ValueTask<object?> ApplyMemberPut(MvccStore store, MemberInfo member, ulong index)
    {
        var (key, value) = _registry.Put(member);
        ReplicatedStoreLog.MemberPut(_logger, MemberId, member, index);
        SetPeerAddress(member);
        return Box(store.PutReplicaMetaAsync(key, value, index));
    }

    private ValueTask<object?> ApplyMemberRemove(MvccStore store, ulong id, ulong index)
    {
        var key = _registry.Remove(id);
        ReplicatedStoreLog.MemberRemoved(_logger, MemberId, id, index);
        if (_transport is TcpTransport tcp && id != MemberId)
        {
            _ = ForgetPeerAsync(tcp, id);
        }

        return Box(store.PutReplicaMetaAsync(key, null, index));
    }

    /// <summary>Points the TCP transport (if that is the transport) at every registered member's first peer URL.</summary>
    private void SetAllPeerAddresses()
    {
        foreach (var member in _registry.Members.Values)
        {
            SetPeerAddress(member);
        }
    }

    private void SetPeerAddress(MemberInfo member)
    {
        if (_transport is not TcpTransport tcp || member.Id == MemberId || member.PeerUrls.Count == 0)
        {
            return;
        }

        try
        {
            tcp.SetPeerAddress(member.Id, MemberRegistry.PeerAddress(member.PeerUrls[0], nameof(member)));
        }
        catch (Exception e) when (e is ArgumentException or ObjectDisposedException)
        {
            // A registry entry is checked before it is proposed; a disposed transport is stopping.
            ReplicatedStoreLog.PeerAddressFailed(_logger, e, MemberId, member.Id);
        }
    }

    private async Task ForgetPeerAsync(TcpTransport tcp, ulong id)
    {
        try
        {
            await tcp.RemovePeer(id).ConfigureAwait(ResumeOnScheduler);
        }
        catch (Exception e) when (e is ObjectDisposedException or IOException or OperationCanceledException)
        {
            ReplicatedStoreLog.PeerAddressFailed(_logger, e, MemberId, id);
        }
    }
}
