using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using EmbeddedRaft.Consensus.Tracking;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>Append size limits and the inflight window, by count and by bytes.</summary>
public class FlowControlTests
{
    private static readonly ulong[] s_three = [1, 2, 3];
    private static readonly int s_entrySize = E(1, 10, "0123456789").EncodedSizeBytes;

    private static TestNode Leader(int maxInflight, ulong maxInflightBytes)
    {
        var options = TestNode.Seeded(1) with
        {
            MaxSizePerMessageBytes = (ulong)(2 * s_entrySize),
            MaxInflightMessages = maxInflight,
            MaxInflightBytes = maxInflightBytes,
        };
        var node = new TestNode(options, MemoryStorage.WithVoters(s_three));
        BecomeLeaderWithCommittedNoop(node);
        return node;
    }

    private static ReadOnlyMemory<byte>[] Commands(int count) =>
        Enumerable.Range(0, count).Select(_ => (ReadOnlyMemory<byte>)"0123456789"u8.ToArray()).ToArray();

    [Test]
    public void AppendsAreSplitByBytesAndStreamedUntilTheWindowIsFull()
    {
        var leader = Leader(maxInflight: 3, maxInflightBytes: 0);

        leader.Node.ProposeBatch(Commands(10));
        var first = leader.ReadMessages().Where(m => m.To == 2 && m.Type == MessageType.Append).ToList();
        Assert.That(first.Select(m => m.Entries.Length), Is.EqualTo(new[] { 2 }), "one append per broadcast, at most two entries");

        // An acknowledgement opens the window: the leader streams as many appends as it allows.
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = first[0].Index + 2 });
        var streamed = leader.ReadMessages().Where(m => m.To == 2 && m.Type == MessageType.Append && !m.Entries.IsEmpty).ToList();

        Assert.That(streamed.Select(m => m.Entries.Length), Is.EqualTo(new[] { 2, 2, 2 }));
        var status = leader.Node.GetStatus().Progress[2];
        Assert.That((status.State, status.InflightMessages, status.IsPaused), Is.EqualTo((ProgressState.Replicate, 3, true)));
    }

    [Test]
    public void TheWindowAlsoClosesOnBytesInFlight()
    {
        var leader = Leader(maxInflight: 100, maxInflightBytes: (ulong)(3 * s_entrySize));

        leader.Node.ProposeBatch(Commands(10));
        var first = leader.ReadMessages().Single(m => m.To == 2 && m.Type == MessageType.Append);
        leader.Step(new Message { Type = MessageType.AppendResponse, From = 2, To = 1, Term = 1, Index = first.Index + 2 });
        var streamed = leader.ReadMessages().Where(m => m.To == 2 && m.Type == MessageType.Append && !m.Entries.IsEmpty).ToList();

        // 2 entries (under 3 entries' bytes), then 4 (at the limit): full.
        Assert.That(streamed.Sum(m => m.Entries.Length), Is.EqualTo(4));
        Assert.That(leader.Node.GetStatus().Progress[2].IsPaused, Is.True);
    }
}
