using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// InitialState's configuration is the one as of the application's applied index (the restart
/// contract of IRaftStorage): the snapshot's, with the configuration changes up to that index applied.
/// </summary>
public sealed class DurableRaftLogConfigurationTests
{
    [Test]
    public async Task TheConfigurationIsTheSnapshotsWithTheChangesUpToTheAppliedIndex()
    {
        var disk = new FaultInjectingFileSystem(1);
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.BootstrapAsync(new ConfState([1]));
            await log.SaveAsync(new HardState(1, 1, 5), ConfLog(), sync: true);
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1])), "default: the applied index is the snapshot's");

        reopened.SetAppliedIndex(2);
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2])));

        reopened.SetAppliedIndex(3);
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2])));

        reopened.SetAppliedIndex(4);
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2], learners: [3])));

        reopened.SetAppliedIndex(0);
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1])));
    }

    [Test]
    public async Task AfterCompactionTheChangesAreReplayedOntoTheSnapshotsConfiguration()
    {
        var disk = new FaultInjectingFileSystem(2);
        var snapshot = new SnapshotMetadata(3, 1, new ConfState([1, 2]));
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options(cachedEntryBytes: 0)))
        {
            await log.BootstrapAsync(new ConfState([1]));
            await log.SaveAsync(new HardState(1, 1, 5), ConfLog(), sync: true);
            await SaveDataAsync(log, snapshot);
            await log.CompactAsync(snapshot);
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options(cachedEntryBytes: 0));
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2])));
        reopened.SetAppliedIndex(5);
        Assert.That(reopened.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2], learners: [3])));
        Assert.That(() => reopened.SetAppliedIndex(2), Throws.TypeOf<ArgumentOutOfRangeException>(), "below the snapshot: restore it first");
        Assert.That(() => reopened.SetAppliedIndex(6), Throws.TypeOf<ArgumentOutOfRangeException>(), "beyond the last index");
    }

    [Test]
    public async Task AnInstalledSnapshotReplacesTheConfiguration()
    {
        var disk = new FaultInjectingFileSystem(3);
        var snapshot = new SnapshotMetadata(40, 3, new ConfState([4, 5, 6]));
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        await log.BootstrapAsync(new ConfState([1]));
        await log.SaveAsync(new HardState(1, 1, 5), ConfLog(), sync: true);
        log.SetAppliedIndex(4);
        await SaveDataAsync(log, snapshot);
        await log.ApplySnapshotAsync(snapshot);

        Assert.That(log.InitialState().ConfState, Is.EqualTo(snapshot.ConfState));
    }

    /// <summary>1: normal, 2: add voter 2, 3: normal, 4: add learner 3, 5: normal.</summary>
    private static Entry[] ConfLog() =>
    [
        MakeEntry(1, 1),
        new(1, 2, EntryType.ConfChange, MessageCodec.EncodeConfChange(ConfChange.AddVoter(2))),
        MakeEntry(3, 1),
        new(1, 4, EntryType.ConfChange, MessageCodec.EncodeConfChange(ConfChange.AddLearner(3))),
        MakeEntry(5, 1),
    ];
}
