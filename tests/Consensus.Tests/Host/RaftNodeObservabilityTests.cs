using System.Diagnostics.Metrics;
using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>What an operator sees: the EmbeddedRaft.Consensus meter tagged with the node id, and the log of leader changes and snapshots.</summary>
[TestFixture]
public sealed class RaftNodeObservabilityTests
{
    [Test]
    public async Task ProposalsCommitsAppliedIndexAndLeaderChangesAreMeasuredPerNode()
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

        listener.RecordObservableInstruments();
        lock (sums)
        {
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.proposals"), Is.EqualTo(3));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.committed_entries"), Is.GreaterThanOrEqualTo(4), "three commands and the leader's empty entry");
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.applied_index"), Is.EqualTo((long)node.Status.AppliedIndex));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.leader_changes"), Is.EqualTo(1));
            Assert.That(sums.GetValueOrDefault("embeddedraft.consensus.ready.entries"), Is.GreaterThanOrEqualTo(4));
        }

        Assert.That(logger.Entries.Where(e => e.Level == LogLevel.Information).Select(e => e.Message),
            Has.Some.Contains("Raft node 7: leader is 7").And.Some.Contains("Raft node 7 is now Leader"));
    }
}
