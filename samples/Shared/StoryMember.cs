using EmbeddedRaft.Mvcc.Replication;

namespace EmbeddedRaft.Samples;

/// <summary>One member of the story's cluster: who it is, where its data lives, and its store while it runs.</summary>
internal sealed class StoryMember(MemberInfo info, string dataDirectory)
{
    public MemberInfo Info { get; } = info;

    public ulong Id => Info.Id;

    public string Name => Info.Name;

    /// <summary>Its WAL, snapshots and B+tree, beneath the story's temporary directory; kept across restarts.</summary>
    public string DataDirectory { get; } = dataDirectory;

    /// <summary>The running store, or null while the member is stopped.</summary>
    public ReplicatedStore? Store { get; set; }

    /// <summary>The running store; throws <see cref="ObjectDisposedException"/> while the member is stopped (its store was disposed).</summary>
    public ReplicatedStore RunningStore => Store ?? throw new ObjectDisposedException(Name, $"{Name} is stopped.");

    public override string ToString() => Name;
}
