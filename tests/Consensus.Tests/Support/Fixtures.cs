using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Support;

/// <summary>Small builders shared by the tests.</summary>
internal static class Fixtures
{
    public static Entry E(ulong term, ulong index, string data = "") =>
        new(term, index, EntryType.Normal, System.Text.Encoding.UTF8.GetBytes(data));

    /// <summary>A node whose storage already holds <paramref name="log"/> and <paramref name="hardState"/>.</summary>
    public static TestNode NodeWithLog(ulong id, ulong[] voters, Entry[] log, HardState hardState = default, RaftOptions? options = null)
    {
        var storage = MemoryStorage.WithVoters(voters);
        storage.Append(log);
        storage.SetHardState(hardState);
        return new TestNode(options ?? TestNode.DefaultOptions(id), storage);
    }

    /// <summary>Makes <paramref name="node"/> leader of the next term and commits its empty entry with acks from every peer.</summary>
    public static void BecomeLeaderWithCommittedNoop(TestNode node)
    {
        node.Core.BecomeCandidate();
        node.Core.BecomeLeader();
        node.ReadMessages();
        var last = node.Core.Log.LastIndex();
        foreach (var peer in node.Core.Tracker.MemberIds.Where(p => p != node.Id))
        {
            node.Step(new Message { Type = MessageType.AppendResponse, From = peer, To = node.Id, Term = node.Core.Term, Index = last });
        }

        node.ReadMessages();
    }

    public static string Text(Entry e) => System.Text.Encoding.UTF8.GetString(e.Data.Span);

    public static (ulong Term, ulong Index)[] Positions(IEnumerable<Entry> entries) => entries.Select(e => (e.Term, e.Index)).ToArray();

    public static ulong[] Ids(int count) => Enumerable.Range(1, count).Select(i => (ulong)i).ToArray();
}
