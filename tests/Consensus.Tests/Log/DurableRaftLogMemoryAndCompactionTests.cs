using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// Memory stays bounded (older entries are read back from the write-ahead log, byte for byte), and
/// a snapshot compacts the log: entries below it minus the retained tail go, whole segments are
/// deleted, old snapshot files pruned, and the log reopens the same.
/// </summary>
public sealed class DurableRaftLogMemoryAndCompactionTests
{
    [Test]
    public async Task OnlyTheNewestCachedEntryBytesStayInMemoryAndOlderEntriesReadBackTheSame()
    {
        var disk = new FaultInjectingFileSystem(1);
        const long limit = 3000;
        var entries = Entries(1, 300, term: 3, dataBytes: 100);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options(cachedEntryBytes: limit));
        for (int i = 0; i < entries.Length; i += 25)
        {
            await log.SaveAsync(new HardState(3, 1, (ulong)i), entries.AsMemory(i, 25), sync: true);
            Assert.That(log.CachedBytes, Is.LessThanOrEqualTo(limit), $"after saving up to entry {i + 25}");
        }

        AssertSameEntries(log.Entries(1, 301, ulong.MaxValue), entries);
        AssertSameEntries(log.Entries(17, 18, ulong.MaxValue), entries.AsSpan(16, 1).ToArray());
        AssertSameEntries(log.Entries(290, 301, ulong.MaxValue), entries.AsSpan(289).ToArray());
    }

    [Test]
    public async Task UnsyncedEntriesStayInMemoryUntilDurable()
    {
        var disk = new FaultInjectingFileSystem(2);
        var entries = Entries(1, 50, term: 1, dataBytes: 100);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options(cachedEntryBytes: 0));
        await log.SaveAsync(null, entries, sync: false);

        // Nothing is durable yet, so nothing may be dropped: the log could not read it back.
        Assert.That(log.CachedBytes, Is.EqualTo(entries.Sum(e => (long)e.EncodedSizeBytes)));
        AssertSameEntries(log.Entries(1, 51, ulong.MaxValue), entries);

        await log.SaveAsync(new HardState(1, 1, 50), ReadOnlyMemory<Entry>.Empty, sync: true);
        Assert.That(log.CachedBytes, Is.EqualTo(0));
        AssertSameEntries(log.Entries(1, 51, ulong.MaxValue), entries);
    }

    [Test]
    public async Task DurableEntriesAboveTheCommitIndexStayInMemoryUntilCommittedOrOverTheCeiling()
    {
        var disk = new FaultInjectingFileSystem(3);
        var entries = Entries(1, 50, term: 1, dataBytes: 100);
        long size = entries[0].EncodedSizeBytes;
        var options = Options(cachedEntryBytes: 0) with { UncommittedCacheCeilingBytes = 40 * size };
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
        await log.SaveAsync(new HardState(1, 1, 0), entries.AsMemory(0, 30), sync: true);

        // Durable but not committed: applied and sent to followers soon, so they stay.
        Assert.That(log.CachedBytes, Is.EqualTo(30 * size));

        await log.SaveAsync(new HardState(1, 1, 20), ReadOnlyMemory<Entry>.Empty, sync: true);
        Assert.That(log.CachedBytes, Is.EqualTo(10 * size), "entries 21-30 are not committed yet");

        await log.SaveAsync(null, entries.AsMemory(30, 20), sync: true);
        Assert.That(log.CachedBytes, Is.EqualTo(30 * size), "entries 21-50: under the ceiling of 40");

        await log.SaveAsync(null, Entries(51, 70, term: 1, dataBytes: 100), sync: true);
        Assert.That(log.CachedBytes, Is.EqualTo(40 * size), "over the ceiling the oldest go, committed or not");
        AssertSameEntries(log.Entries(1, 51, ulong.MaxValue), entries);
    }

    [Test]
    public async Task ReadingBackSkipsEntriesThatWereOverwritten()
    {
        var disk = new FaultInjectingFileSystem(3);
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options(cachedEntryBytes: 0)))
        {
            await log.SaveAsync(new HardState(1, 1, 5), Entries(1, 20, term: 1), sync: true);
            await log.SaveAsync(new HardState(2, 2, 5), Entries(8, 12, term: 2), sync: true);
            await log.SaveAsync(new HardState(3, 3, 5), Entries(10, 15, term: 3), sync: true);
            var expected = Entries(1, 7, term: 1).Concat(Entries(8, 9, term: 2)).Concat(Entries(10, 15, term: 3)).ToArray();
            AssertSameEntries(log.Entries(1, 16, ulong.MaxValue), expected);
            Assert.That(() => log.Entries(1, 17, ulong.MaxValue), Throws.TypeOf<EntriesUnavailableException>());
        }

        // And across a reopen (suffix overwrite replayed from the log).
        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options(cachedEntryBytes: 0));
        var again = Entries(1, 7, term: 1).Concat(Entries(8, 9, term: 2)).Concat(Entries(10, 15, term: 3)).ToArray();
        AssertSameEntries(reopened.Entries(1, 16, ulong.MaxValue), again);
        Assert.That(reopened.LastIndex(), Is.EqualTo(15));
    }

    [Test]
    public async Task ASuffixOverwriteAfterAReopenReplacesTheOldTailForGood()
    {
        var disk = new FaultInjectingFileSystem(4);
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.SaveAsync(new HardState(1, 1, 3), Entries(1, 10, term: 1), sync: true);
        }

        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options()))
        {
            await log.SaveAsync(new HardState(2, 2, 3), Entries(5, 6, term: 2), sync: true);
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        Assert.That(reopened.LastIndex(), Is.EqualTo(6));
        AssertSameEntries(reopened.Entries(1, 7, ulong.MaxValue), [.. Entries(1, 4, term: 1), .. Entries(5, 6, term: 2)]);
    }

    [Test]
    public async Task CompactionKeepsTheRetainedTailReleasesSegmentsAndReopensTheSame()
    {
        var disk = new FaultInjectingFileSystem(5);
        var options = Options(retainedEntries: 20, segmentSizeBytes: 4096);
        var entries = Entries(1, 400, term: 2, dataBytes: 64);
        var metadata = new SnapshotMetadata(300, 2, new ConfState([1, 2, 3]));
        int segmentsBefore;
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, options))
        {
            for (int i = 0; i < entries.Length; i += 50)
            {
                await log.SaveAsync(new HardState(2, 1, (ulong)i + 50), entries.AsMemory(i, 50), sync: true);
            }

            segmentsBefore = WalSegments(disk).Count;
            await SaveDataAsync(log, metadata);
            await log.CompactAsync(metadata);

            Assert.That(log.FirstIndex(), Is.EqualTo(281));
            Assert.That(log.Term(280), Is.EqualTo(2));
            Assert.That(log.Snapshot(), Is.EqualTo(metadata));
            Assert.That(() => log.Entries(280, 290, ulong.MaxValue), Throws.TypeOf<LogCompactedException>());
            AssertSameEntries(log.Entries(281, 401, ulong.MaxValue), entries.AsSpan(280).ToArray());

            // The released segments go after the call returns (off a Raft loop's path), while the log stays open.
            await log.WhenSegmentsReleasedAsync();
            Assert.That(WalSegments(disk).Count, Is.LessThan(segmentsBefore / 2), "deleted while the log is open");
        }

        var segmentsAfter = WalSegments(disk);
        Assert.That(segmentsBefore, Is.GreaterThan(5), "the test needs several segments");
        Assert.That(segmentsAfter.Count, Is.LessThan(segmentsBefore / 2));
        Assert.That(segmentsAfter.Select(DurableRaftLog.ParseSegmentSequence), Does.Not.Contain(0L));

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
        Assert.That(reopened.FirstIndex(), Is.EqualTo(281), "a reopened log keeps the retained tail below its snapshot");
        Assert.That(reopened.Term(280), Is.EqualTo(2));
        Assert.That(reopened.NewestSnapshot, Is.EqualTo(metadata));
        Assert.That(reopened.Snapshot(), Is.EqualTo(metadata));
        Assert.That(reopened.InitialState().HardState, Is.EqualTo(new HardState(2, 1, 400)));
        AssertSameEntries(reopened.Entries(281, 401, ulong.MaxValue), entries.AsSpan(280).ToArray());
    }

    [Test]
    public async Task ARawNodeOverALogRetainingEntriesBelowItsSnapshotHandsOutOnlyTheEntriesAfterTheSnapshot()
    {
        // The retained tail (281..300) is inside the snapshot: an application restored from the
        // snapshot must not be handed those entries again, live or after a reopen.
        var disk = new FaultInjectingFileSystem(6);
        var options = Options(retainedEntries: 20, segmentSizeBytes: 4096);
        var entries = Entries(1, 400, term: 2, dataBytes: 64);
        var metadata = new SnapshotMetadata(300, 2, new ConfState([1, 2, 3]));
        await using (var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, options))
        {
            await log.SaveAsync(new HardState(2, 1, 400), entries, sync: true);
            await SaveDataAsync(log, metadata);
            await log.CompactAsync(metadata);
            Assert.That(log.FirstIndex(), Is.EqualTo(281), "the test needs entries retained below the snapshot");
            Assert.That(CommittedIndexesHandedOut(log), Is.EqualTo(Enumerable.Range(301, 100).Select(i => (ulong)i)), "over the live log");
        }

        await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
        Assert.That(reopened.FirstIndex(), Is.EqualTo(281), "the test needs entries retained below the snapshot");
        Assert.That(CommittedIndexesHandedOut(reopened), Is.EqualTo(Enumerable.Range(301, 100).Select(i => (ulong)i)), "over the reopened log");
    }

    // A fresh RawNode with no AppliedIndex over the log: every committed entry it hands out.
    private static List<ulong> CommittedIndexesHandedOut(DurableRaftLog log)
    {
        var node = new RawNode(new RaftOptions(1) { RandomSeed = 1 }, log);
        var handedOut = new List<ulong>();
        while (node.HasReady())
        {
            var ready = node.GetReady();
            foreach (var e in ready.CommittedEntries.Span)
            {
                handedOut.Add(e.Index);
            }

            node.Advance();
        }

        return handedOut;
    }

    [Test]
    public async Task RepeatedCompactionsKeepOnlyTheSnapshotterRetainCountFiles()
    {
        var disk = new FaultInjectingFileSystem(6);
        var options = Options() with { Snapshots = new Storage.Snapshots.SnapshotOptions { RetainCount = 2 } };
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
        await log.SaveAsync(new HardState(1, 1, 50), Entries(1, 50, term: 1), sync: true);
        for (ulong index = 10; index <= 50; index += 10)
        {
            var metadata = new SnapshotMetadata(index, 1, new ConfState([1]));
            await SaveDataAsync(log, metadata);
            await log.CompactAsync(metadata);
        }

        var files = disk.ListFiles($"{LogDirectory}/snap").Where(f => f.EndsWith(".snap", StringComparison.Ordinal)).Order().ToList();
        Assert.That(files, Is.EqualTo(new[] { $"{1:x16}-{40:x16}.snap", $"{1:x16}-{50:x16}.snap" }));
        Assert.That(await ReadSnapshotDataAsync(log, 50), Is.EqualTo(SnapshotData(50, 1000)));
    }

    [Test]
    public async Task CompactingBeyondTheLogOrWithTheWrongTermIsRefused()
    {
        var disk = new FaultInjectingFileSystem(7);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, Options());
        await log.SaveAsync(new HardState(1, 1, 10), Entries(1, 10, term: 1), sync: true);
        var beyond = new SnapshotMetadata(11, 1, new ConfState([1]));
        var wrongTerm = new SnapshotMetadata(5, 2, new ConfState([1]));
        await SaveDataAsync(log, beyond);
        await SaveDataAsync(log, wrongTerm);

        Assert.That(async () => await log.CompactAsync(beyond), Throws.ArgumentException.With.Message.Contains("beyond the last index 10"));
        Assert.That(async () => await log.CompactAsync(wrongTerm), Throws.ArgumentException.With.Message.Contains("log holds term 1"));
        Assert.That(log.NewestSnapshot, Is.Null);
    }

    private static List<string> WalSegments(FaultInjectingFileSystem disk) =>
        disk.ListFiles($"{LogDirectory}/wal").Where(f => f.EndsWith(".wal", StringComparison.Ordinal)).ToList();

    private static void AssertSameEntries(ReadOnlyMemory<Entry> actual, Entry[] expected)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length));
        for (int i = 0; i < expected.Length; i++)
        {
            var got = actual.Span[i];
            Assert.That((got.Index, got.Term, got.Type), Is.EqualTo((expected[i].Index, expected[i].Term, expected[i].Type)));
            Assert.That(got.Data.ToArray(), Is.EqualTo(expected[i].Data.ToArray()), $"data of entry {expected[i].Index}");
        }
    }
}
