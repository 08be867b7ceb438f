using EmbeddedRaft.Consensus.Core;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tracking;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

public class MemoryStorageTests
{
    private static MemoryStorage WithEntries(params Entry[] entries)
    {
        var storage = new MemoryStorage();
        storage.Append(entries);
        return storage;
    }

    [Test]
    public void TermsAreAvailableFromTheCompactionPointToTheLastIndex()
    {
        var storage = WithEntries(E(1, 1), E(2, 2), E(3, 3));
        storage.CreateSnapshot(1, null);
        storage.Compact(1);

        Assert.That(storage.Term(1), Is.EqualTo(1), "the dummy entry keeps its term");
        Assert.That(storage.Term(3), Is.EqualTo(3));
        Assert.Throws<LogCompactedException>(() => storage.Term(0));
        Assert.Throws<EntriesUnavailableException>(() => storage.Term(4));
        Assert.That((storage.FirstIndex(), storage.LastIndex()), Is.EqualTo((2UL, 3UL)));
    }

    [Test]
    public void EntriesAreLimitedBySizeButAlwaysIncludeOne()
    {
        var storage = WithEntries(E(1, 1, "aaaa"), E(1, 2, "bbbb"), E(1, 3, "cccc"));
        var oneSize = (ulong)E(1, 1, "aaaa").EncodedSizeBytes;

        Assert.That(storage.Entries(1, 4, 0).Length, Is.EqualTo(1));
        Assert.That(storage.Entries(1, 4, 2 * oneSize).Length, Is.EqualTo(2));
        Assert.That(storage.Entries(1, 4, ulong.MaxValue).Length, Is.EqualTo(3));
        Assert.Throws<LogCompactedException>(() => storage.Entries(0, 2, ulong.MaxValue));
        Assert.Throws<EntriesUnavailableException>(() => storage.Entries(1, 5, ulong.MaxValue));
    }

    [Test]
    public void AppendReplacesAConflictingSuffixWithoutChangingMemoryHandedOutBefore()
    {
        var storage = WithEntries(E(1, 1, "a"), E(1, 2, "b"), E(1, 3, "c"));
        var before = storage.Entries(1, 4, ulong.MaxValue);

        storage.Append([E(2, 2, "B")]);

        Assert.That(Positions(storage.Entries(1, 3, ulong.MaxValue).ToArray()), Is.EqualTo(new[] { (1UL, 1UL), (2UL, 2UL) }));
        Assert.That(Positions(before.ToArray()), Is.EqualTo(new[] { (1UL, 1UL), (1UL, 2UL), (1UL, 3UL) }), "earlier slices are immutable");
    }

    [Test]
    public void AppendWithAGapIsRefused() =>
        Assert.Throws<ArgumentException>(() => WithEntries(E(1, 1)).Append([E(1, 3)]));

    [Test]
    public void SnapshotsReplaceTheLogAndOlderOnesAreRefused()
    {
        var storage = WithEntries(E(1, 1), E(1, 2));
        var snapshot = new SnapshotMetadata(5, 3, new ConfState([1, 2, 3]));

        storage.ApplySnapshot(snapshot);

        Assert.That((storage.FirstIndex(), storage.LastIndex(), storage.Term(5)), Is.EqualTo((6UL, 5UL, 3UL)));
        Assert.That(storage.InitialState().ConfState, Is.EqualTo(new ConfState([1, 2, 3])));
        Assert.Throws<SnapshotOutOfDateException>(() => storage.ApplySnapshot(snapshot));
    }

    [Test]
    public void CreateSnapshotRecordsTheTermOfItsIndex()
    {
        var storage = WithEntries(E(1, 1), E(2, 2), E(2, 3));

        var snapshot = storage.CreateSnapshot(2, new ConfState([1]));

        Assert.That((snapshot.Index, snapshot.Term), Is.EqualTo((2UL, 2UL)));
        Assert.Throws<SnapshotOutOfDateException>(() => storage.CreateSnapshot(1, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => storage.CreateSnapshot(9, null));
    }

    // Guards the Raft core review's finding 11: compaction never passes the snapshot.
    [Test]
    public void CompactingPastTheSnapshotIsRefusedSoTheLeaderNeverSendsAUselessSnapshot()
    {
        var storage = MemoryStorage.WithVoters(1, 2, 3);
        storage.Append([E(1, 1), E(1, 2), E(1, 3)]);
        storage.CreateSnapshot(1, null);

        Assert.That(() => storage.Compact(2), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("snapshot"));
        Assert.That(storage.FirstIndex(), Is.EqualTo(1UL), "nothing compacted");

        storage.Compact(1);
        Assert.That((storage.FirstIndex(), storage.Snapshot().Index), Is.EqualTo((2UL, 1UL)));
    }
}


public class UnstableLogTests
{
    [Test]
    public void TruncatingNeverChangesSlicesAlreadyHandedOut()
    {
        var log = new UnstableLog(1);
        log.TruncateAndAppend([E(1, 1, "a"), E(1, 2, "b"), E(1, 3, "c")]);
        var handedOut = log.Entries;

        log.TruncateAndAppend([E(2, 2, "x")]);

        Assert.That(Positions(handedOut.ToArray()), Is.EqualTo(new[] { (1UL, 1UL), (1UL, 2UL), (1UL, 3UL) }));
        Assert.That(Positions(log.Entries.ToArray()), Is.EqualTo(new[] { (1UL, 1UL), (2UL, 2UL) }));
    }

    [Test]
    public void StableToIgnoresAnEntryReplacedSinceTheReady()
    {
        var log = new UnstableLog(1);
        log.TruncateAndAppend([E(1, 1), E(1, 2)]);
        log.TruncateAndAppend([E(2, 2)]);

        log.StableTo(2, 1);

        Assert.That(log.Offset, Is.EqualTo(1), "the term-1 entry at 2 was replaced; nothing becomes stable");
        log.StableTo(2, 2);
        Assert.That((log.Offset, log.Count), Is.EqualTo((3UL, 0)));
    }

    [Test]
    public void ABurstLeavesNoLargeBufferBehindOnceItIsStable()
    {
        // A buffer is written once and keeps every entry's data it ever held alive; one kept at a
        // burst's size would sit on the large-object heap (85,000 bytes: 2,125 entries of 40 bytes)
        // until a gen2 collection, and take every command written to it there.
        var log = new UnstableLog(1);
        ulong next = 1;
        log.TruncateAndAppend(Enumerable.Range(0, 5000).Select(i => E(1, next + (ulong)i)).ToArray());
        next += 5000;
        log.StableTo(next - 1, 1);
        Assert.That(log.BufferLength, Is.GreaterThanOrEqualTo(5000), "the burst itself needs a large buffer");

        var handedOut = new List<(ReadOnlyMemory<Entry> Slice, ulong First)>();
        for (var round = 0; round < 200; round++)
        {
            log.TruncateAndAppend(Enumerable.Range(0, 100).Select(i => E(1, next + (ulong)i)).ToArray());
            handedOut.Add((log.Entries, next));
            next += 100;
            log.StableTo(next - 1, 1);
        }

        Assert.That(log.BufferLength, Is.LessThan(2125), "steady appends of 100 entries after the burst");
        foreach (var (slice, first) in handedOut)
        {
            Assert.That(slice.Span[0].Index, Is.EqualTo(first), "a slice handed out never changes");
            Assert.That(slice.Span[^1].Index, Is.EqualTo(first + 99));
        }
    }
}

public class InflightsTests
{
    [Test]
    public void TheWindowIsFullByCountOrBytesAndFreesUpToAnIndex()
    {
        var inflights = new Inflights(3, 100);
        inflights.Add(1, 10);
        inflights.Add(2, 10);
        Assert.That(inflights.Full, Is.False);
        inflights.Add(5, 10);
        Assert.That(inflights.Full, Is.True, "count limit");

        inflights.FreeLE(2);
        Assert.That((inflights.Count, inflights.Bytes, inflights.Full), Is.EqualTo((1, 10UL, false)));

        inflights.Add(6, 95);
        Assert.That(inflights.Full, Is.True, "byte limit");
        Assert.Throws<InvariantViolationException>(() => inflights.Add(7, 1));
    }

    [Test]
    public void IndexesMustIncrease()
    {
        var inflights = new Inflights(10, 0);
        inflights.Add(5, 1);
        Assert.Throws<InvariantViolationException>(() => inflights.Add(5, 1));
    }
}
