using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Support;

/// <summary>
/// An in-memory network of <see cref="TestNode"/>s (etcd's test "network"): messages are
/// delivered in FIFO order until none are left; links can be cut, nodes isolated, and message
/// types ignored.
/// </summary>
internal sealed class TestNetwork
{
    private readonly HashSet<(ulong, ulong)> _cut = [];
    private readonly HashSet<MessageType> _ignored = [];

    public TestNetwork(params TestNode[] nodes)
    {
        foreach (var node in nodes)
        {
            Nodes[node.Id] = node;
        }
    }

    /// <summary>A network of <paramref name="count"/> fresh voters 1..count.</summary>
    public static TestNetwork OfSize(int count, Func<ulong, RaftOptions>? options = null)
    {
        var ids = Enumerable.Range(1, count).Select(i => (ulong)i).ToArray();
        return new TestNetwork(ids.Select(id =>
            new TestNode(options?.Invoke(id) ?? TestNode.DefaultOptions(id), MemoryStorage.WithVoters(ids))).ToArray());
    }

    public Dictionary<ulong, TestNode> Nodes { get; } = [];

    public TestNode this[ulong id] => Nodes[id];

    /// <summary>Messages dropped by cuts, isolation or ignore rules (for assertions).</summary>
    public List<Message> Dropped { get; } = [];

    public void Cut(ulong a, ulong b)
    {
        _cut.Add((a, b));
        _cut.Add((b, a));
    }

    public void Isolate(ulong id)
    {
        foreach (var other in Nodes.Keys)
        {
            if (other != id)
            {
                Cut(id, other);
            }
        }
    }

    public void Ignore(MessageType type) => _ignored.Add(type);

    public void Recover()
    {
        _cut.Clear();
        _ignored.Clear();
    }

    public void Campaign(ulong id)
    {
        Nodes[id].Node.Campaign();
        Deliver(Nodes[id].ReadMessages());
    }

    public void Propose(ulong id, string data)
    {
        Nodes[id].Node.Propose(System.Text.Encoding.UTF8.GetBytes(data));
        Deliver(Nodes[id].ReadMessages());
    }

    public void Tick(ulong id)
    {
        Nodes[id].Node.Tick();
        Deliver(Nodes[id].ReadMessages());
    }

    /// <summary>Delivers messages and everything they cause, until the network is quiet.</summary>
    public void Deliver(IEnumerable<Message> messages)
    {
        var queue = new Queue<Message>(messages);
        var guard = 0;
        while (queue.TryDequeue(out var m))
        {
            if (++guard > 1_000_000)
            {
                throw new InvalidOperationException("Network never quiesces.");
            }

            if (_cut.Contains((m.From, m.To)) || _ignored.Contains(m.Type) || !Nodes.TryGetValue(m.To, out var node))
            {
                Dropped.Add(m);
                continue;
            }

            try
            {
                node.Step(m);
            }
            catch (ProposalDroppedException)
            {
                // A forwarded proposal refused by the leader: the proposer would time out.
            }

            foreach (var next in node.ReadMessages())
            {
                queue.Enqueue(next);
            }
        }
    }

    public void Send(params Message[] messages) => Deliver(messages);
}
