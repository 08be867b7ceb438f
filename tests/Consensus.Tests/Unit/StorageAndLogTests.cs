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
    public void NoChunkEverReachesTheLargeObjectHeap()
    {
        // A chunk is written once and keeps every entry's data it ever held alive; one on the
        // large-object heap (85,000 bytes: 2,125 entries of 40 bytes) would live until a gen2
        // collection and take every command written to it there (session 14, 1,024 in flight).
        var log = new UnstableLog(1);
        ulong next = 1;
        log.TruncateAndAppend(Enumerable.Range(0, 5000).Select(i => E(1, next + (ulong)i)).ToArray());
        next += 5000;
        var burst = log.Entries;
        Assert.That(log.LongestChunkLength, Is.LessThanOrEqualTo(UnstableLog.MaxChunkEntries).And.LessThan(2125), "a burst is spread over chunks");
        Assert.That(log.RunCount, Is.GreaterThan(1));
        Assert.That(Positions(burst.ToArray()), Is.EqualTo(Enumerable.Range(1, 5000).Select(i => (1UL, (ulong)i)).ToArray()), "a slice over chunks is one copy in order");
        log.StableTo(next - 1, 1);

        var handedOut = new List<(ReadOnlyMemory<Entry> Slice, ulong First)>();
        for (var round = 0; round < 200; round++)
        {
            log.TruncateAndAppend(Enumerable.Range(0, 100).Select(i => E(1, next + (ulong)i)).ToArray());
            handedOut.Add((log.Entries, next));
            next += 100;
            log.StableTo(next - 1, 1);
            Assert.That(log.LongestChunkLength, Is.LessThan(2125));
        }

        foreach (var (slice, first) in handedOut)
        {
            Assert.That(slice.Span[0].Index, Is.EqualTo(first), "a slice handed out never changes");
            Assert.That(slice.Span[^1].Index, Is.EqualTo(first + 99));
        }
    }

    [Test]
    public void AnAppendThatFitsInOneChunkIsHandedOutWithoutACopy()
    {
        var log = new UnstableLog(1);
        log.TruncateAndAppend(Enumerable.Range(1, 1000).Select(i => E(1, (ulong)i)).ToArray());
        log.AcceptInProgress();

        // 1,000 + 100 do not fit in one 1,024-entry chunk: the second append starts a chunk of its own.
        log.TruncateAndAppend(Enumerable.Range(1001, 100).Select(i => E(1, (ulong)i)).ToArray());
        var ready = log.EntriesNotInProgress;
        var whole = log.Slice(1001, 1101);
        Assert.That(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(ready, out var a) && System.Runtime.InteropServices.MemoryMarshal.TryGetArray(whole, out var b) && ReferenceEquals(a.Array, b.Array),
            Is.True, "both slices are views of the same chunk");
        Assert.That(Positions(ready.ToArray()), Is.EqualTo(Enumerable.Range(1001, 100).Select(i => (1UL, (ulong)i)).ToArray()));
        Assert.That(log.RunCount, Is.EqualTo(2));
    }

    [Test]
    public void StableEntriesAreHeldUntilHandedOutForApplying()
    {
        var log = new UnstableLog(1);
        log.TruncateAndAppend(Enumerable.Range(1, 300).Select(i => E(1, (ulong)i)).ToArray());
        var written = log.Entries;
        log.StableTo(300, 1);

        Assert.That(log.TryStableSlice(101, 201, out var held), Is.True);
        Assert.That(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(held, out var a) && System.Runtime.InteropServices.MemoryMarshal.TryGetArray(written, out var b) && ReferenceEquals(a.Array, b.Array),
            Is.True, "served from the chunk they were written to");
        Assert.That(Positions(held.ToArray()), Is.EqualTo(Enumerable.Range(101, 100).Select(i => (1UL, (ulong)i)).ToArray()));

        log.ReleaseStableTo(150);
        Assert.That(log.TryStableSlice(101, 201, out _), Is.False, "released: read from the storage");
        Assert.That(log.TryStableSlice(151, 201, out _), Is.True);

        // A new leader's entries replace stable ones from 251 on: those are no longer held.
        log.TruncateAndAppend([E(2, 251)]);
        Assert.That(log.TryStableSlice(151, 251, out _), Is.True);
        Assert.That(log.TryStableSlice(151, 252, out _), Is.False);
        Assert.That((log.StableOffset, log.Offset), Is.EqualTo((151UL, 251UL)));
    }

    [Test]
    public void ASizeLimitedSliceOverChunksStopsAtTheLimit()
    {
        var log = new UnstableLog(1);
        log.TruncateAndAppend(Enumerable.Range(1, 1000).Select(i => E(1, (ulong)i, "0123456789")).ToArray());
        log.TruncateAndAppend(Enumerable.Range(1001, 1000).Select(i => E(1, (ulong)i, "0123456789")).ToArray());
        var size = (ulong)E(1, 1000, "0123456789").EncodedSizeBytes;

        Assert.That(Positions(log.Slice(995, 2001, size * 10).ToArray()), Is.EqualTo(Enumerable.Range(995, 10).Select(i => (1UL, (ulong)i)).ToArray()));
        Assert.That(Positions(log.Slice(995, 2001, size * 3).ToArray()), Is.EqualTo(Enumerable.Range(995, 3).Select(i => (1UL, (ulong)i)).ToArray()));
        Assert.That(log.Slice(1000, 2001, 1).Length, Is.EqualTo(1), "at least one entry");
    }

    [Test]
    public void RandomAppendsTruncationsAndStableMarksMatchAListAndNeverChangeAHandedOutSlice()
    {
        var seed = TestContext.CurrentContext.Random.Next();
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var log = new UnstableLog(1);
        var model = new List<Entry>();
        var stableModel = new List<Entry>();
        ulong offset = 1;
        ulong term = 1;
        var handedOut = new List<(ReadOnlyMemory<Entry> Slice, Entry[] Expected)>();
        for (var step = 0; step < 3000; step++)
        {
            var choice = random.Next(10);
            if (choice < 5)
            {
                // Append after the end or truncate: from anywhere in [offset, end].
                var end = offset + (ulong)model.Count;
                // Sometimes below the unstable entries (a new leader replacing stable ones).
                var lowest = Math.Max(1, (long)offset - stableModel.Count - 3);
                var from = random.Next(3) != 0 ? end : (ulong)(lowest + random.NextInt64((long)end - lowest + 1));
                if (from < end)
                {
                    term++;
                }

                var n = random.Next(5) == 0 ? random.Next(1, 3000) : random.Next(1, 300);
                var entries = Enumerable.Range(0, n).Select(i => E(term, from + (ulong)i, $"{step}:{i}")).ToArray();
                log.TruncateAndAppend(entries);
                if (from < offset)
                {
                    var keep = Math.Max(0, stableModel.Count - (int)(offset - from));
                    stableModel.RemoveRange(keep, stableModel.Count - keep);
                    model.Clear();
                    offset = from;
                }

                model.RemoveRange((int)(from - offset), model.Count - (int)(from - offset));
                model.AddRange(entries);
            }
            else if (choice < 7 && model.Count > 0)
            {
                var upTo = random.Next(model.Count);
                log.StableTo(model[upTo].Index, model[upTo].Term);
                stableModel.AddRange(model.GetRange(0, upTo + 1));
                model.RemoveRange(0, upTo + 1);
                offset += (ulong)upTo + 1;
                if (stableModel.Count > UnstableLog.MaxStableEntries)
                {
                    stableModel.RemoveRange(0, stableModel.Count - UnstableLog.MaxStableEntries);
                }
            }
            else if (choice < 8 && stableModel.Count > 0)
            {
                // Entries handed out for applying: the stable ones up to there are released.
                var upTo = random.Next(stableModel.Count);
                log.ReleaseStableTo(stableModel[upTo].Index);
                stableModel.RemoveRange(0, upTo + 1);
            }
            else if (model.Count > 0)
            {
                var low = random.Next(model.Count);
                var high = random.Next(low, model.Count + 1);
                var slice = log.Slice(offset + (ulong)low, offset + (ulong)high);
                handedOut.Add((slice, model.GetRange(low, high - low).ToArray()));
            }

            Assert.That((log.Offset, log.Count, log.StableOffset), Is.EqualTo((offset, model.Count, offset - (ulong)stableModel.Count)), $"step {step}, seed {seed}");
            if (stableModel.Count > 0)
            {
                var low = random.Next(stableModel.Count);
                var high = random.Next(low + 1, stableModel.Count + 1);
                var stableOffset = offset - (ulong)stableModel.Count;
                if (log.TryStableSlice(stableOffset + (ulong)low, stableOffset + (ulong)high, out var held))
                {
                    Assert.That(held.ToArray(), Is.EqualTo(stableModel.GetRange(low, high - low).ToArray()), $"stable slice, step {step}, seed {seed}");
                    handedOut.Add((held, stableModel.GetRange(low, high - low).ToArray()));
                }

                // The no-copy prefix (what committed entries are handed out as): a non-empty prefix of
                // the range, and the whole of it whenever the whole is held in one stretch.
                Assert.That(log.TryStablePrefix(stableOffset + (ulong)low, stableOffset + (ulong)high, out var prefix), Is.True, $"step {step}, seed {seed}");
                Assert.That(prefix.Length, Is.InRange(1, high - low), $"step {step}, seed {seed}");
                Assert.That(prefix.ToArray(), Is.EqualTo(stableModel.GetRange(low, prefix.Length).ToArray()), $"stable prefix, step {step}, seed {seed}");
                Assert.That(prefix.Length == high - low, Is.EqualTo(log.TryStableSlice(stableOffset + (ulong)low, stableOffset + (ulong)high, out _)), $"step {step}, seed {seed}");
                handedOut.Add((prefix, stableModel.GetRange(low, prefix.Length).ToArray()));
            }

            Assert.That(log.LongestChunkLength, Is.LessThan(2125), $"step {step}, seed {seed}");
        }

        Assert.That(log.Entries.ToArray(), Is.EqualTo(model.ToArray()), $"seed {seed}");
        for (ulong i = offset; i < offset + (ulong)model.Count; i++)
        {
            Assert.That(log.TryGetTerm(i, out var t) && t == model[(int)(i - offset)].Term, Is.True, $"term of {i}, seed {seed}");
        }

        foreach (var (slice, expected) in handedOut)
        {
            Assert.That(slice.ToArray(), Is.EqualTo(expected), $"a handed-out slice changed, seed {seed}");
        }
    }

    [Test]
    public void EntriesHandedOutForApplyingWhileTheirWriteRanNeverJoinTheStableWindow()
    {
        // A follower learns the commit before its own write of the entries ends: they are handed out
        // for applying from the unstable log, and only then marked durable. The stable window (entries
        // kept for a later Ready's committed batch) must not take them: they may be applied, and their
        // received frame given back, before the next Ready.
        var log = new RaftLog(new MemoryStorage(), ulong.MaxValue);
        log.Append(Enumerable.Range(1, 300).Select(i => E(1, (ulong)i)).ToArray());
        log.CommitTo(200);
        Assert.That(log.NextCommittedEntries().Length, Is.EqualTo(200));
        log.AcceptApplying(200);

        log.StableTo(300, 1);

        Assert.That(log.Unstable.StableOffset, Is.EqualTo(201UL), "only the entries not handed out are held");
        Assert.That(log.Unstable.TryStableSlice(200, 201, out _), Is.False);
        Assert.That(log.Unstable.TryStableSlice(201, 301, out _), Is.True);
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
