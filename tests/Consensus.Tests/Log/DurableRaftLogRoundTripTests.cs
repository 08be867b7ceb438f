using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>What is saved is what a reopened log holds: entries, hard state, bootstrap configuration, snapshots.</summary>
public sealed class DurableRaftLogRoundTripTests
{
    [Test]
    public async Task ANewLogIsEmptyAndStartsAtIndexOne()
    {
        var disk = new FaultInjectingFileSystem(1);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());

        Assert.That(log.IsEmpty, Is.True);
        Assert.That(log.FirstIndex(), Is.EqualTo(1));
        Assert.That(log.LastIndex(), Is.EqualTo(0));
        Assert.That(log.NewestSnapshot, Is.Null);
        Assert.That(log.InitialState().HardState.IsEmpty, Is.True);
    }

    [Test]
    public async Task EntriesHardStateAndBootstrapSurviveAReopen()
    {
        var disk = new FaultInjectingFileSystem(2);
        var initial = new ConfState([1, 2, 3]);
        var entries = Entries(1, 50, term: 2);
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.BootstrapAsync(initial);
            await log.SaveAsync(new HardState(2, 1, 0), entries.AsMemory(0, 20), sync: true);
            await log.SaveAsync(new HardState(2, 1, 20), entries.AsMemory(20), sync: true);
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.IsEmpty, Is.False);
        Assert.That(reopened.InitialState().HardState, Is.EqualTo(new HardState(2, 1, 20)));
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(initial));
        Assert.That(reopened.Snapshot(), Is.EqualTo(new SnapshotMetadata(0, 0, initial)));
        Assert.That(await ReadAllAsync(reopened), Is.EqualTo(entries));
        Assert.That(reopened.Term(0), Is.EqualTo(0));
        Assert.That(reopened.Term(50), Is.EqualTo(2));
    }

    [Test]
    public async Task BootstrapIsRefusedOnceAnythingWasWritten()
    {
        var disk = new FaultInjectingFileSystem(3);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        await log.SaveAsync(new HardState(1, 0, 0), ReadOnlyMemory<Entry>.Empty, sync: true);

        Assert.That(async () => await log.BootstrapAsync(new ConfState([1])), Throws.InvalidOperationException);
    }

    [Test]
    public async Task EntriesStopAtTheSizeLimitButReturnAtLeastOne()
    {
        var disk = new FaultInjectingFileSystem(4);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        var entries = Entries(1, 10, term: 1, dataBytes: 100);
        await log.SaveAsync(null, entries, sync: true);
        ulong one = (ulong)entries[0].EncodedSizeBytes;

        Assert.That(log.Entries(1, 11, 0).Length, Is.EqualTo(1));
        Assert.That(log.Entries(1, 11, one * 3).Length, Is.EqualTo(3));
        Assert.That(log.Entries(1, 11, (one * 3) - 1).Length, Is.EqualTo(2));
        Assert.That(() => log.Entries(1, 12, ulong.MaxValue), Throws.TypeOf<EntriesUnavailableException>());
        Assert.That(() => log.Entries(0, 2, ulong.MaxValue), Throws.TypeOf<LogCompactedException>());
    }

    [Test]
    public async Task AnInstalledSnapshotStartsTheLogAfterItAndSurvivesAReopen()
    {
        var disk = new FaultInjectingFileSystem(5);
        var metadata = new SnapshotMetadata(100, 4, new ConfState([1, 2]));
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.SaveAsync(new HardState(1, 1, 5), Entries(1, 10, term: 1), sync: true);
            await SaveDataAsync(log, metadata, bytes: 5000);
            await log.ApplySnapshotAsync(metadata);
            await log.SaveAsync(new HardState(4, 0, 100), Entries(101, 105, term: 4), sync: true);
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.NewestSnapshot, Is.EqualTo(metadata));
        Assert.That(reopened.Snapshot(), Is.EqualTo(metadata));
        Assert.That(reopened.FirstIndex(), Is.EqualTo(101));
        Assert.That(reopened.Term(100), Is.EqualTo(4));
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(metadata.ConfState));
        Assert.That(await ReadAllAsync(reopened), Is.EqualTo(Entries(101, 105, term: 4)));
        Assert.That(await ReadSnapshotDataAsync(reopened, 100), Is.EqualTo(SnapshotData(100, 5000)));
    }

    [Test]
    public async Task ApplyingASnapshotWhoseDataWasNotSavedIsRefused()
    {
        var disk = new FaultInjectingFileSystem(6);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());

        Assert.That(async () => await log.ApplySnapshotAsync(new SnapshotMetadata(10, 1, new ConfState([1]))), Throws.InvalidOperationException);
        Assert.That(log.NewestSnapshot, Is.Null);
    }

    [Test]
    public async Task ASnapshotFileWithoutAMarkerIsIgnoredAndDeletedAtOpen()
    {
        var disk = new FaultInjectingFileSystem(7);
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.SaveAsync(new HardState(1, 1, 3), Entries(1, 5, term: 1), sync: true);
            // Received from a leader, never installed (a crash before ApplySnapshotAsync).
            await SaveDataAsync(log, new SnapshotMetadata(50, 3, new ConfState([1, 2])));
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.NewestSnapshot, Is.Null);
        Assert.That(reopened.LastIndex(), Is.EqualTo(5));
        Assert.That(disk.ListFiles(LogDirectory + "/snap").Where(f => f.EndsWith(".snap", StringComparison.Ordinal)), Is.Empty, "it would count against the retention and push out the installed snapshot");
        Assert.That(async () => await reopened.OpenSnapshotDataAsync(50), Throws.TypeOf<FileNotFoundException>());
    }

    [Test]
    public void ASnapshotterKeepingFewerThanTwoFilesIsRefused()
    {
        var options = Options() with { Snapshots = new Storage.Snapshots.SnapshotOptions { RetainCount = 1 } };

        Assert.That(async () => await DurableRaftLog.OpenAsync(new FaultInjectingFileSystem(8), LogDirectory, options), Throws.ArgumentException.With.Property("ParamName").EqualTo("Snapshots"));
    }
}
