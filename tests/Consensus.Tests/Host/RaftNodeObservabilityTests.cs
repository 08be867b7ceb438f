using System.Diagnostics.Metrics;
using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>What an operator sees: the EmbeddedRaft.Consensus meter tagged with the node id, and the log of leader changes and snapshots.</summary>
[TestFixture]
public sealed class RaftNodeObservabilityTests
{
    [Test]
    public async Task ProposalsCommitsReadRoundsAppliedIndexAndLeaderChangesAreMeasuredPerNode()
    {
        var sums = new Dictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "EmbeddedRaft.Consensus")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "node.id" && Equals(tag.Value, 7L))
                {
                    lock (sums)
                    {
                        // The gauge reports a level, the others increments.
                        sums[instrument.Name] = instrument.Name.EndsWith("applied_index", StringComparison.Ordinal) ? value : sums.GetValueOrDefault(instrument.Name) + value;
                    }
                }
            }
        });
        listener.Start();

        var logger = new RecordingLogger();
        await using var cluster = new HostCluster(seed: 31, o => o with { Logger = logger });
        var node = await cluster.StartNodeAsync(7, [7]);
        await cluster.WaitForLeaderAsync();
        for (var i = 0; i < 3; i++)
        {
            await node.ProposeAsync(Encoding.UTF8.GetBytes($"m{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await Task.WhenAll(node.ReadIndexAsync().AsTask(), node.ReadIndexAsync().AsTask()).WaitAsync(Waits.Limit);
        await node.ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);

        listener.RecordObservableInstruments();
        lock (sums)
        {
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.proposals"), Is.EqualTo(3));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.committed_entries"), Is.GreaterThanOrEqualTo(4), "three commands and the leader's empty entry");
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.applied_index"), Is.EqualTo((long)node.Status.AppliedIndex));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.leader_changes"), Is.EqualTo(1));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.ready.entries"), Is.GreaterThanOrEqualTo(4));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.read_index.readers"), Is.EqualTo(3), "each read counted once, in the round that answered it");
        }

        Assert.That(logger.Entries.Where(e => e.Level == LogLevel.Information).Select(e => e.Message),
            Has.Some.Contains("Raft node 7: leader is 7").And.Some.Contains("Raft node 7 is now Leader"));
    }

    [Test]
    public async Task WithTimeStoppedStatusShowsEveryAcknowledgedProposalCommittedOnEveryMemberThatAppliedIt()
    {
        // A user polling Status after a proposal's task completed must see a commit index at least
        // the proposal's, on the member that answered and on every member that applied it, whether
        // or not a tick came since. With the clock stopped (no ticks, no heartbeats) only the
        // proposals themselves move the members.
        var ticks = new StoppableTicks();
        await using var cluster = await HostCluster.StartAsync(3, seed: 2601, o => o with { TimeProvider = ticks });
        var leader = cluster.LeaderId();
        var follower = cluster.FollowerId();
        await cluster[leader].ProposeAsync(Encoding.UTF8.GetBytes("settle")).AsTask().WaitAsync(Waits.Limit);
        using var stopped = ticks.Stop();

        for (var round = 0; round < 3; round++)
        {
            foreach (var via in new[] { leader, follower })
            {
                var command = $"r{round} via {via}";
                await cluster[via].ProposeAsync(Encoding.UTF8.GetBytes(command)).AsTask().WaitAsync(Waits.Limit);
                var index = cluster.Machines[via].AppliedCommands.Single(c => c.Command == command).Index;
                var answering = cluster[via].Status;
                Assert.That(answering.Raft.HardState.Commit, Is.GreaterThanOrEqualTo(index), $"node {via} answered \"{command}\" (index {index}): its Status must show it committed");
                Assert.That(answering.AppliedIndex, Is.GreaterThanOrEqualTo(index), $"node {via} answered \"{command}\" (index {index}): its Status must show it applied");

                await cluster.WaitForAllAppliedAsync(index);
                foreach (var (id, node) in cluster.Nodes)
                {
                    var status = node.Status;
                    Assert.That(status.Raft.HardState.Commit, Is.GreaterThanOrEqualTo(index), $"node {id} applied index {index}: its Status must show it committed");
                    Assert.That(status.LeaderId, Is.EqualTo(leader), $"node {id} knows the leader");
                }
            }
        }

        Assert.That(cluster.Nodes.Values.Select(n => n.Status.Raft.HardState.Term).Distinct().Count(), Is.EqualTo(1), "no election ran while the clock was stopped (one term everywhere)");
    }

    [Test]
    public void MessagesTheTransportRefusesAreCountedAndSummarizedOncePerIntervalNotLoggedOneByOne()
    {
        // Node 1 of three, alone and campaigning: every vote request it sends is refused by the
        // transport. On one thread with a manual clock, so the count at each tick is exact.
        var scheduler = new DeterministicTaskScheduler();
        var time = new FakeTimeProvider();
        using var network = new InProcessNetwork(new InProcessNetworkOptions { Seed = 41, TimeProvider = time });
        var transport = new RefusingTransport(network.CreateTransport(1));
        var logger = new RecordingLogger();
        var options = new RaftNodeOptions
        {
            NodeId = 1,
            InitialVoters = [1, 2, 3],
            DataDirectory = "/node1",
            FileSystem = new FaultInjectingFileSystem(41),
            TimeProvider = time,
            Scheduler = scheduler,
            Logger = logger,
            TickInterval = TimeSpan.FromMilliseconds(10),
            Raft = new RaftOptions { RandomSeed = 41, ElectionTimeoutTicks = 10 },
            Log = new DurableRaftLogOptions { Wal = new WalOptions { Threading = WalThreading.CallerThread } },
        };

        // The summary interval: max(100, 10 election timeouts) ticks.
        const int IntervalTicks = 100;
        var start = scheduler.Run(() => RaftNode<long>.StartAsync(options, new RecordingStateMachine(), transport).AsTask());
        scheduler.RunUntilIdle();
        var node = start.Result;
        var refusedBeforeSummary = new List<int>();
        for (var tick = 1; tick <= 2 * IntervalTicks; tick++)
        {
            if (tick % IntervalTicks == 0)
            {
                // The summary at this tick counts every refusal of the turns before it.
                refusedBeforeSummary.Add(transport.Refused);
            }

            time.Advance(options.TickInterval);
            scheduler.RunUntilIdle();
        }

        var summaries = logger.Entries.Where(e => e.Message.Contains("sends failed", StringComparison.Ordinal)).ToList();
        Assert.That(refusedBeforeSummary[0], Is.GreaterThan(2), "the node campaigned several times in the first interval");
        Assert.That(summaries.Select(e => e.Level), Is.EqualTo(new[] { LogLevel.Information, LogLevel.Information }), "one summary per interval");
        Assert.That(summaries[0].Message, Does.Contain($"in the last {IntervalTicks} ticks: 0 messages rejected, {refusedBeforeSummary[0]} sends failed"));
        Assert.That(summaries[1].Message, Does.Contain($"{refusedBeforeSummary[1] - refusedBeforeSummary[0]} sends failed"), "each summary counts only its own interval");
        Assert.That(
            logger.Entries.Where(e => e.Level >= LogLevel.Information && e.Message.Contains("failed to send", StringComparison.Ordinal)),
            Is.Empty,
            "single refusals are logged at Debug only");

        var disposed = scheduler.Run(() => node.DisposeAsync().AsTask());
        scheduler.RunUntilIdle();
        Assert.That(disposed.IsCompletedSuccessfully, Is.True);
    }

    /// <summary>A transport that refuses (throws for) every message it is asked to send, counting them.</summary>
    private sealed class RefusingTransport(IRaftTransport inner) : IRaftTransport
    {
        public int Refused { get; private set; }

        public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) => inner.Bind(localId, receiver);

        public void Send(Message message)
        {
            Refused++;
            throw new PeerUnreachableException(message.To, "refused by the test transport");
        }

        public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
            inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);
    }
}
