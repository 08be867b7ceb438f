namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// A member of a replicated store's cluster as its registry records it (etcd's <c>Member</c>):
/// replicated through the log with the data, listed by <see cref="ReplicatedStore.MemberListAsync"/>.
/// </summary>
/// <param name="Id">The member's Raft node id: unique in the cluster, never reused, not 0.</param>
/// <param name="Name">A human-readable name (may be empty).</param>
/// <param name="PeerUrls">
/// Where members reach it for Raft traffic, like <c>tcp://127.0.0.1:2380</c> or
/// <c>tls://host:2380</c>. When the store's transport is a
/// <see cref="Consensus.Transport.Tcp.TcpTransport"/>, the store keeps the transport's address of
/// each other member equal to that member's first peer URL.
/// </param>
/// <param name="ClientUrls">Where clients reach it (informational: the store serves no clients itself).</param>
/// <param name="IsLearner">True for a learner: it receives the log but does not vote.</param>
public sealed record MemberInfo(ulong Id, string Name, IReadOnlyList<string> PeerUrls, IReadOnlyList<string> ClientUrls, bool IsLearner = false)
{
    /// <inheritdoc/>
    public bool Equals(MemberInfo? other) =>
        other is not null
        && Id == other.Id
        && Name == other.Name
        && IsLearner == other.IsLearner
        && PeerUrls.SequenceEqual(other.PeerUrls)
        && ClientUrls.SequenceEqual(other.ClientUrls);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Id, Name, IsLearner, PeerUrls.Count, ClientUrls.Count);

    /// <summary>The member in one line: id, name, role and URLs.</summary>
    public override string ToString() =>
        $"{Id:x16} '{Name}' {(IsLearner ? "learner" : "voter")} peers [{string.Join(", ", PeerUrls)}] clients [{string.Join(", ", ClientUrls)}]";
}
