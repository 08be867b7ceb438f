using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// The cluster's members and id as this member's applied state holds them: kept in memory, and
/// persisted in the store's replica bucket in the same B+tree batches as the data (so a snapshot
/// image carries it and a crash keeps it consistent with the consistent index).
/// </summary>
/// <remarks>
/// Keys: <c>cluster</c> (8 bytes, big-endian cluster id) and <c>member/</c> + 8-byte big-endian id
/// (value: the <see cref="MemberInfo"/> encoding of <see cref="Write"/>). Thread-safety: changed
/// only by the apply pipeline (and at start); read from any thread through immutable copies.
/// </remarks>
internal sealed class MemberRegistry
{
    /// <summary>Most URLs of each kind a member may list, and most bytes of a name or URL: a registry entry stays small.</summary>
    public const int MaxUrls = 16;

    public const int MaxTextBytes = 1024;

    private static readonly byte[] s_clusterKey = Encoding.ASCII.GetBytes("cluster");
    private static readonly byte[] s_memberPrefix = Encoding.ASCII.GetBytes("member/");

    private volatile IReadOnlyDictionary<ulong, MemberInfo> _members = new SortedDictionary<ulong, MemberInfo>();
    private ulong _clusterId;

    public ulong ClusterId => Volatile.Read(ref _clusterId);

    /// <summary>The members now, by id (an immutable copy).</summary>
    public IReadOnlyDictionary<ulong, MemberInfo> Members => _members;

    public IReadOnlyList<MemberInfo> List() => [.. _members.Values];

    /// <summary>A cluster id derived from the members' ids alone (as etcd derives its own): equal on every member bootstrapped with the same list, never 0.</summary>
    public static ulong DeriveClusterId(IEnumerable<ulong> memberIds)
    {
        var ids = memberIds.Order().ToArray();
        var bytes = new byte[ids.Length * 8];
        for (int i = 0; i < ids.Length; i++)
        {
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), ids[i]);
        }

        ulong id = BinaryPrimitives.ReadUInt64BigEndian(SHA256.HashData(bytes));
        return id == 0 ? 1 : id;
    }

    /// <summary>
    /// The transport address ("host:port") of a peer URL <c>tcp://host:port</c> or <c>tls://host:port</c>.
    /// </summary>
    /// <exception cref="ArgumentException">Not such a URL; the message quotes it.</exception>
    public static string PeerAddress(string url, string paramName)
    {
        if (string.IsNullOrWhiteSpace(url)
            || !Uri.TryCreate(url, UriKind.Absolute, out var uri)
            || (uri.Scheme != "tcp" && uri.Scheme != "tls")
            || string.IsNullOrEmpty(uri.Host)
            || uri.Port is <= 0 or > 65535
            || (uri.AbsolutePath != "/" && uri.AbsolutePath.Length != 0)
            || uri.Query.Length != 0
            || !url.Contains($":{uri.Port}", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Peer URL '{url}' is not tcp://host:port or tls://host:port (with an explicit port from 1 to 65535).", paramName);
        }

        return $"{uri.Host}:{uri.Port}";
    }

    /// <summary>Checks a member before it is proposed or bootstrapped.</summary>
    /// <exception cref="ArgumentException">A zero id, no peer URL, a bad peer URL, too many URLs or too long a name or URL; the message names it.</exception>
    public static void Check(MemberInfo member, string paramName)
    {
        ArgumentNullException.ThrowIfNull(member, paramName);
        if (member.Id == 0)
        {
            throw new ArgumentException("A member's id must not be 0.", paramName);
        }

        ArgumentNullException.ThrowIfNull(member.Name, paramName);
        ArgumentNullException.ThrowIfNull(member.PeerUrls, paramName);
        ArgumentNullException.ThrowIfNull(member.ClientUrls, paramName);
        if (member.PeerUrls.Count == 0)
        {
            throw new ArgumentException($"Member {member.Id} has no peer URL.", paramName);
        }

        if (member.PeerUrls.Count > MaxUrls || member.ClientUrls.Count > MaxUrls)
        {
            throw new ArgumentException($"Member {member.Id} lists more than {MaxUrls} peer or client URLs.", paramName);
        }

        if (Encoding.UTF8.GetByteCount(member.Name) > MaxTextBytes)
        {
            throw new ArgumentException($"Member {member.Id}'s name is longer than {MaxTextBytes} bytes.", paramName);
        }

        foreach (var url in member.PeerUrls)
        {
            PeerAddress(url, paramName);
        }

        foreach (var url in member.ClientUrls)
        {
            if (url is null || Encoding.UTF8.GetByteCount(url) > MaxTextBytes || !Uri.TryCreate(url, UriKind.Absolute, out _))
            {
                throw new ArgumentException($"Client URL '{url}' of member {member.Id} is not an absolute URL of at most {MaxTextBytes} bytes.", paramName);
            }
        }
    }

    public static void Write(CommandWriter w, MemberInfo member)
    {
        w.WriteUInt64(member.Id);
        w.WriteString(member.Name);
        w.WriteUInt64((ulong)member.PeerUrls.Count);
        foreach (var url in member.PeerUrls)
        {
            w.WriteString(url);
        }

        w.WriteUInt64((ulong)member.ClientUrls.Count);
        foreach (var url in member.ClientUrls)
        {
            w.WriteString(url);
        }

        w.WriteBool(member.IsLearner);
    }

    public static MemberInfo Read(ref CommandReader r)
    {
        ulong id = r.ReadUInt64("member id");
        string name = r.ReadString("member name");
        var peers = new string[r.ReadCount("member peer URL count")];
        for (int i = 0; i < peers.Length; i++)
        {
            peers[i] = r.ReadString("member peer URL");
        }

        var clients = new string[r.ReadCount("member client URL count")];
        for (int i = 0; i < clients.Length; i++)
        {
            clients[i] = r.ReadString("member client URL");
        }

        bool learner = r.ReadBool("member learner flag");
        if (id == 0)
        {
            throw new InvalidDataException("Replicated store command: a member with id 0.");
        }

        return new MemberInfo(id, name, peers, clients, learner);
    }

    /// <summary>Loads the registry from the replica bucket's entries (<see cref="MvccStore.ReadReplicaMeta"/>).</summary>
    /// <exception cref="InvalidDataException">An entry does not decode.</exception>
    public void Load(IEnumerable<(byte[] Key, byte[] Value)> entries)
    {
        var members = new SortedDictionary<ulong, MemberInfo>();
        ulong clusterId = 0;
        foreach (var (key, value) in entries)
        {
            if (key.AsSpan().SequenceEqual(s_clusterKey))
            {
                clusterId = value.Length == 8 ? BinaryPrimitives.ReadUInt64BigEndian(value) : throw new InvalidDataException($"Replica bucket: the cluster id is {value.Length} bytes, not 8.");
            }
            else if (key.AsSpan().StartsWith(s_memberPrefix))
            {
                var r = new CommandReader(value);
                var member = Read(ref r);
                r.ExpectEnd("a registry member");
                members[member.Id] = member;
            }
        }

        _members = members;
        Volatile.Write(ref _clusterId, clusterId);
    }

    /// <summary>Applies a member's addition or change in memory and returns what to persist.</summary>
    public (byte[] Key, byte[] Value) Put(MemberInfo member)
    {
        var copy = new SortedDictionary<ulong, MemberInfo>((IDictionary<ulong, MemberInfo>)_members) { [member.Id] = member };
        _members = copy;
        var w = new CommandWriter(0);
        Write(w, member);
        return (MemberKey(member.Id), w.Written[1..].ToArray());
    }

    /// <summary>Removes a member in memory and returns the key to delete.</summary>
    public byte[] Remove(ulong id)
    {
        var copy = new SortedDictionary<ulong, MemberInfo>((IDictionary<ulong, MemberInfo>)_members);
        copy.Remove(id);
        _members = copy;
        return MemberKey(id);
    }

    /// <summary>Sets the cluster id in memory and returns what to persist.</summary>
    public (byte[] Key, byte[] Value) SetClusterId(ulong clusterId)
    {
        Volatile.Write(ref _clusterId, clusterId);
        var value = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(value, clusterId);
        return (s_clusterKey, value);
    }

    private static byte[] MemberKey(ulong id)
    {
        var key = new byte[s_memberPrefix.Length + 8];
        s_memberPrefix.CopyTo(key, 0);
        BinaryPrimitives.WriteUInt64BigEndian(key.AsSpan(s_memberPrefix.Length), id);
        return key;
    }
}
