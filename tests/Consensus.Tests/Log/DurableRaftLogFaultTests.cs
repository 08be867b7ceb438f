using System.Diagnostics.Metrics;
using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>Fail-stop after a failed write or flush; bad input refused without harm; metrics and logs.</summary>
public sealed class DurableRaftLogFaultTests
{
    [Test]
    public async Task AFailedFlushStopsTheLogForGoodAndAReopenRecoversWhatWasDurable()
    {
        var disk = new FaultInjectingFileSystem(1);
        var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        await log.SaveAsync(new HardState(1, 1, 5), Entries(1, 5, term: 1), sync: true);
        disk.FailWhen = op => op.Kind == FaultOperationKind.Flush;

        var first = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.SaveAsync(new HardState(1, 1, 6), Entries(6, 8, term: 1), sync: true));
        Assert.That(first!.InnerException, Is.InstanceOf<IOException>());
        disk.FailWhen = null;

        // Never retried: every later change fails with the first cause, even though the disk works again.
        var later = Assert.ThrowsAsync<StorageFaultedException>(async () => await log.SaveAsync(null, Entries(9, 9, term: 1), sync: true));
        Assert.That(later!.InnerException, Is.SameAs(first.InnerException));
        Assert.That(async () => await log.CompactAsync(new SnapshotMetadata(3, 1, new ConfState([1]))), Throws.TypeOf<StorageFaultedException>());
        await log.DisposeAsync();

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.LastIndex(), Is.AnyOf(5UL, 8UL), "the failed save may or may not have reached the disk");
        Assert.That(reopened.InitialState().HardState.Commit, Is.AnyOf(5UL, 6UL));
    }

    [Test]
    public async Task InvalidSavesAreRefusedAndChangeNothing()
    {
        var disk = new FaultInjectingFileSystem(2);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        await log.SaveAsync(new HardState(2, 1, 3), Entries(1, 5, term: 2), sync: true);

        Assert.That(async () => await log.SaveAsync(null, Entries(7, 8, term: 2), sync: true), Throws.ArgumentException.With.Message.Contains("Missing log entries"));
        Assert.That(async () => await log.SaveAsync(null, new[] { MakeEntry(6, 2), MakeEntry(8, 2) }, sync: true), Throws.ArgumentException.With.Message.Contains("not contiguous"));
        Assert.That(async () => await log.SaveAsync(null, Entries(6, 6, term: 1), sync: true), Throws.ArgumentException.With.Message.Contains("below the term"));
        Assert.That(async () => await log.SaveAsync(null, Entries(2, 3, term: 3), sync: true), Throws.ArgumentException.With.Message.Contains("would replace the committed entry"));
        Assert.That(async () => await log.SaveAsync(new HardState(1, 1, 3), ReadOnlyMemory<Entry>.Empty, sync: true), Throws.ArgumentException.With.Message.Contains("term goes back"));
        Assert.That(async () => await log.SaveAsync(new HardState(2, 1, 9), ReadOnlyMemory<Entry>.Empty, sync: true), Throws.ArgumentException.With.Message.Contains("beyond the last index"));

        Assert.That(log.LastIndex(), Is.EqualTo(5));
        Assert.That(log.InitialState().HardState, Is.EqualTo(new HardState(2, 1, 3)));
        await log.DisposeAsync();
        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.LastIndex(), Is.EqualTo(5));
    }

    [Test]
    public async Task FsyncDurationsWalBytesAndSnapshotsAreMeasuredWithTheNodeIdTag()
    {
        var measurements = new List<(string Name, double Value, object? NodeId)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == DurableRaftLog.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        listener.Start();

        var disk = new FaultInjectingFileSystem(3);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options() with { MetricsNodeId = 4242 });
        await log.SaveAsync(new HardState(1, 1, 1), Entries(1, 3, term: 1), sync: true);
        await SaveDataAsync(log, new SnapshotMetadata(1, 1, new ConfState([1])), bytes: 777);

        List<(string Name, double Value, object? NodeId)> ours;
        lock (measurements)
        {
            ours = measurements.Where(m => Equals(m.NodeId, 4242L)).ToList();
        }

        Assert.That(ours.Where(m => m.Name == "embeddedraft.storage.fsync.duration"), Is.Not.Empty);
        Assert.That(ours.Where(m => m.Name == "embeddedraft.storage.wal.bytes").Sum(m => m.Value), Is.GreaterThan(3 * 16));
        Assert.That(ours.Where(m => m.Name == "embeddedraft.storage.snapshot.count").Sum(m => m.Value), Is.EqualTo(1));
        Assert.That(ours.Where(m => m.Name == "embeddedraft.storage.snapshot.bytes").Sum(m => m.Value), Is.GreaterThan(777));

        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            object? nodeId = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "node.id")
                {
                    nodeId = tag.Value;
                }
            }

            lock (measurements)
            {
                measurements.Add((instrument.Name, value, nodeId));
            }
        }
    }

    [Test]
    public async Task AFlushOverTheSlowFsyncThresholdIsLogged()
    {
        var disk = new FaultInjectingFileSystem(4);
        var logger = new RecordingLogger();
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options() with { Logger = logger, SlowFsyncThreshold = TimeSpan.Zero });
        await log.SaveAsync(new HardState(1, 1, 0), Entries(1, 1, term: 1), sync: true);

        Assert.That(logger.Entries.Where(e => e.EventId.Name == "SlowFsync").Select(e => e.Message), Has.Some.Contains("/data/raft/wal/"));
    }

    [Test]
    public async Task ATornTailCutAtOpenIsLogged()
    {
        // Crash after the write of an unsynced save's bytes but before their flush: the seeded disk
        // keeps, drops or tears them, so some seeds leave a torn tail that open must cut and log.
        int repairs = 0;
        for (int seed = 1; seed <= 30; seed++)
        {
            var disk = new FaultInjectingFileSystem(seed);
            await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
            {
                await log.SaveAsync(new HardState(1, 1, 1), Entries(1, 5, term: 1), sync: true);
                await log.SaveAsync(null, Entries(6, 40, term: 1, dataBytes: 100), sync: false);
                disk.FailWhen = op => op.Kind == FaultOperationKind.Flush;
                try
                {
                    await log.SaveAsync(null, ReadOnlyMemory<Entry>.Empty, sync: true);
                }
                catch (StorageFaultedException)
                {
                }
            }

            disk.FailWhen = null;
            disk.Restart();
            var logger = new RecordingLogger();
            await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options() with { Logger = logger });
            Assert.That(reopened.LastIndex(), Is.InRange(5UL, 40UL), $"seed {seed}");
            repairs += logger.Entries.Count(e => e.EventId.Name == "WalTailRepaired");
        }

        Assert.That(repairs, Is.GreaterThan(0), "no seed tore the tail");
    }

    [Test]
    public async Task SnapshotDataIsSavedBesideChangesToTheLog()
    {
        var disk = new FaultInjectingFileSystem(5);
        var gate = new TaskCompletionSource();
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        var metadata = new SnapshotMetadata(1, 1, new ConfState([1]));
        await log.SaveAsync(new HardState(1, 1, 1), Entries(1, 1, term: 1), sync: true);
        var saving = log.SaveSnapshotDataAsync(metadata, async (stream, token) => await gate.Task).AsTask();
        await log.SaveAsync(null, Entries(2, 2, term: 1), sync: true); // snapshot data may be saved beside changes
        gate.SetResult();
        await saving.WaitAsync(Waits.Limit);
        Assert.That(log.LastIndex(), Is.EqualTo(2));
    }
}
