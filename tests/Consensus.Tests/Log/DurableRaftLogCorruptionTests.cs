using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// A log that contradicts its hard state or its snapshot refuses to open, naming the segment file
/// and the offset of the record at fault; damage the log can explain (a missing or broken snapshot
/// file with an older usable one) is set aside and logged instead.
/// </summary>
public sealed class DurableRaftLogCorruptionTests
{
    private const string WalDirectory = LogDirectory + "/wal";

    [Test]
    public async Task ACommitIndexBeyondTheLastEntryIsRefusedAtTheHardStateRecord()
    {
        var disk = new FaultInjectingFileSystem(1);
        var positions = await WriteRawAsync(disk, Entry(1, 1), Entry(2, 1), Entry(3, 1), Hard(1, 1, commit: 5));

        await ExpectCorruptionAsync(disk, positions[3], "commit index 5 is beyond the last index 3");
    }

    [Test]
    public async Task AGapBetweenEntriesIsRefusedAtTheEntryAfterIt()
    {
        var disk = new FaultInjectingFileSystem(2);
        var positions = await WriteRawAsync(disk, Entry(1, 1), Entry(2, 1), Entry(4, 1));

        await ExpectCorruptionAsync(disk, positions[2], "leaves a gap after the last index 2");
    }

    [Test]
    public async Task TermsGoingBackwardsAreRefused()
    {
        var disk = new FaultInjectingFileSystem(3);
        var positions = await WriteRawAsync(disk, Entry(1, 2), Entry(2, 1));

        await ExpectCorruptionAsync(disk, positions[1], "terms go backwards");
    }

    [Test]
    public async Task AHardStateWhoseTermGoesBackIsRefused()
    {
        var disk = new FaultInjectingFileSystem(4);
        var positions = await WriteRawAsync(disk, Hard(5, 1, 0), Hard(4, 1, 0));

        await ExpectCorruptionAsync(disk, positions[1], "term goes back from 5 to 4");
    }

    [Test]
    public async Task AVoteChangedWithinATermIsRefused()
    {
        var disk = new FaultInjectingFileSystem(5);
        var positions = await WriteRawAsync(disk, Hard(5, 1, 0), Hard(5, 2, 0));

        await ExpectCorruptionAsync(disk, positions[1], "vote changes from 1 to 2 within term 5");
    }

    [Test]
    public async Task OverwritingACommittedEntryIsRefused()
    {
        var disk = new FaultInjectingFileSystem(6);
        var positions = await WriteRawAsync(disk, Entry(1, 1), Entry(2, 1), Entry(3, 1), Hard(1, 1, commit: 3), Entry(2, 2));

        await ExpectCorruptionAsync(disk, positions[4], "overwrites the entry of term 1 at or below the commit index 3");
    }

    [Test]
    public async Task ASnapshotMarkerThatDisagreesWithTheEntriesIsRefused()
    {
        var disk = new FaultInjectingFileSystem(7);
        var metadata = new SnapshotMetadata(2, 7, new ConfState([1]));
        var positions = await WriteRawAsync(disk, Entry(1, 1), Entry(2, 1), Hard(1, 1, 2), Marker(SnapshotMarkerKind.Compacted, metadata, 2, 7, lastIndex: 2));

        await ExpectCorruptionAsync(disk, positions[3], "says entry 2 has term 7; the log holds term 1");
    }

    [Test]
    public async Task ASnapshotMarkerThatKeepsEntriesTheLogDoesNotHoldIsRefused()
    {
        var disk = new FaultInjectingFileSystem(12);
        var metadata = new SnapshotMetadata(2, 1, new ConfState([1]));
        var positions = await WriteRawAsync(disk, Entry(1, 1), Entry(2, 1), Entry(3, 1), Hard(1, 1, 2), Marker(SnapshotMarkerKind.Compacted, metadata, 1, 1, lastIndex: 5));

        await ExpectCorruptionAsync(disk, positions[4], "keeping entries (1, 5]) does not match the log (0, 3]");
    }

    [Test]
    public async Task ARecordThatDoesNotDecodeIsRefused()
    {
        var disk = new FaultInjectingFileSystem(8);
        var positions = await WriteRawAsync(disk, Entry(1, 1), ((byte)LogRecordType.Entry, new byte[] { 3, 9, 9 }, 2UL));

        await ExpectCorruptionAsync(disk, positions[1], "does not decode");
    }

    [Test]
    public async Task AnUnknownRecordTypeIsRefused()
    {
        var disk = new FaultInjectingFileSystem(9);
        var positions = await WriteRawAsync(disk, ((byte)200, new byte[] { 1 }, 0UL));

        await ExpectCorruptionAsync(disk, positions[0], "Unknown record type 200");
    }

    [Test]
    public async Task AMarkedSnapshotWhoseFileIsMissingIsRefusedNamingTheFile()
    {
        var disk = new FaultInjectingFileSystem(10);
        var metadata = new SnapshotMetadata(30, 2, new ConfState([1]));
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.SaveAsync(new HardState(2, 1, 20), Entries(1, 40, term: 2), sync: true);
            await SaveDataAsync(log, metadata);
            await log.CompactAsync(metadata);
        }

        string snapshotFile = $"{LogDirectory}/snap/{2:x16}-{30:x16}.snap";
        disk.DeleteFile(snapshotFile);

        var thrown = Assert.ThrowsAsync<CorruptionException>(async () => await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()));
        Assert.That(thrown!.Path, Is.EqualTo(snapshotFile));
        Assert.That(thrown.Reason, Does.Contain("its file is missing"));
    }

    [Test]
    public async Task ADamagedNewestSnapshotFallsBackToAnOlderMarkedOneAndIsLogged()
    {
        var disk = new FaultInjectingFileSystem(11);
        var logger = new RecordingLogger();
        var options = Options(retainedEntries: 100) with { Logger = logger };
        var older = new SnapshotMetadata(10, 2, new ConfState([1]));
        var newer = new SnapshotMetadata(30, 2, new ConfState([1]));
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, options))
        {
            await log.SaveAsync(new HardState(2, 1, 35), Entries(1, 40, term: 2), sync: true);
            await SaveDataAsync(log, older);
            await log.CompactAsync(older);
            await SaveDataAsync(log, newer);
            await log.CompactAsync(newer);
        }

        disk.FlipBit($"{LogDirectory}/snap/{2:x16}-{30:x16}.snap", 200, 3);

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
        Assert.That(reopened.NewestSnapshot, Is.EqualTo(older));
        Assert.That(reopened.LastIndex(), Is.EqualTo(40));
        Assert.That(await ReadSnapshotDataAsync(reopened, 10), Is.EqualTo(SnapshotData(10, 1000)));
        Assert.That(logger.Entries.Select(e => e.EventId.Name), Does.Contain("SnapshotQuarantined").And.Contain("SnapshotFallback"));
    }

    private static async Task ExpectCorruptionAsync(FaultInjectingFileSystem disk, WalPosition at, string reason)
    {
        var thrown = Assert.ThrowsAsync<CorruptionException>(async () => await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()));
        Assert.That(thrown!.Path, Does.StartWith(WalDirectory + "/" + at.Sequence.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(thrown.Offset, Is.EqualTo(at.Offset));
        Assert.That(thrown.Reason, Does.Contain(reason));

        // Refused, not repaired: a second open finds the same fault.
        var again = Assert.ThrowsAsync<CorruptionException>(async () => await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()));
        Assert.That(again!.Offset, Is.EqualTo(at.Offset));
        await Task.CompletedTask;
    }

    /// <summary>Writes records straight to the log's write-ahead log, as no live call would.</summary>
    private static async Task<List<WalPosition>> WriteRawAsync(FaultInjectingFileSystem disk, params (byte Type, byte[] Payload, ulong Index)[] records)
    {
        var positions = new List<WalPosition>();
        disk.CreateDirectory(LogDirectory);
        await using var wal = WriteAheadLog.Open(disk, WalDirectory, Options().Wal);
        foreach (var (type, payload, index) in records)
        {
            positions.Add(await wal.AppendAsync(type, payload, index));
        }

        return positions;
    }

    private static (byte, byte[], ulong) Entry(ulong index, ulong term) =>
        ((byte)LogRecordType.Entry, MessageCodec.EncodeEntry(MakeEntry(index, term)), index);

    private static (byte, byte[], ulong) Hard(ulong term, ulong vote, ulong commit) =>
        ((byte)LogRecordType.HardState, MessageCodec.EncodeHardState(new HardState(term, vote, commit)), 0UL);

    private static (byte, byte[], ulong) Marker(SnapshotMarkerKind kind, SnapshotMetadata metadata, ulong compactIndex, ulong compactTerm, ulong lastIndex) =>
        ((byte)LogRecordType.SnapshotMarker, LogRecordCodec.EncodeMarker(new SnapshotMarker(kind, metadata, compactIndex, compactTerm, lastIndex)), 0UL);
}
