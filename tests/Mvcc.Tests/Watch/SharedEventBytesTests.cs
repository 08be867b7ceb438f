using System.Runtime.InteropServices;
using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;
using static EmbeddedRaft.Mvcc.Tests.Watch.WatchTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// An ordinary watch's live events of one response share slab arrays for their keys and values
/// (<see cref="EventBytes"/>): each event's bytes are its own slice, never written again, so a caller
/// that keeps every response forever still reads exactly the written bytes; a slab never spans
/// responses, and a response of one event allocates exactly its bytes.
/// </summary>
public sealed class SharedEventBytesTests
{
    [Test]
    public void CopiesOfOneResponseAreDisjointAndNoLaterCopyOrResponseRewritesThem()
    {
        var seed = Environment.TickCount;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var bytes = new EventBytes();
        var kept = new List<(ReadOnlyMemory<byte> Copy, byte[] Original)>();
        for (int response = 0; response < 50; response++)
        {
            bytes.Restart();
            int events = random.Next(1, 300);
            for (int i = 0; i < events; i++)
            {
                // Mostly small, sometimes larger than a slab, sometimes empty.
                int length = random.Next(10) == 0 ? random.Next(EventBytes.MaxSlabBytes, 3 * EventBytes.MaxSlabBytes) : random.Next(0, 200);
                var original = new byte[length];
                random.NextBytes(original);
                kept.Add((bytes.Copy(original), original));
            }
        }

        foreach (var (copy, original) in kept)
        {
            Assert.That(copy.ToArray(), Is.EqualTo(original), "a kept copy still holds exactly its bytes after every later copy and response");
        }

        // No two copies overlap (of one slab: other slabs are other arrays).
        var bySlab = kept
            .Where(k => k.Copy.Length > 0)
            .Select(k => (Ok: MemoryMarshal.TryGetArray(k.Copy, out var segment), Segment: segment))
            .GroupBy(k => k.Segment.Array);
        foreach (var slab in bySlab)
        {
            var ordered = slab.Select(k => k.Segment).OrderBy(s => s.Offset).ToList();
            for (int i = 1; i < ordered.Count; i++)
            {
                Assert.That(ordered[i].Offset, Is.GreaterThanOrEqualTo(ordered[i - 1].Offset + ordered[i - 1].Count), "copies in one slab are disjoint");
            }
        }
    }

    [Test]
    public void AResponseOfOneEventAllocatesExactlyItsBytesAndTheNextResponseStartsANewSlab()
    {
        var bytes = new EventBytes();
        bytes.Restart();
        var first = bytes.Copy(new byte[116]);
        Assert.That(MemoryMarshal.TryGetArray<byte>(first, out var firstSlab), Is.True);
        Assert.That(firstSlab.Array!.Length, Is.EqualTo(116), "the first slab of a response is sized for one event");

        var second = bytes.Copy(new byte[116]);
        Assert.That(MemoryMarshal.TryGetArray<byte>(second, out var secondSlab), Is.True);
        Assert.That(secondSlab.Array!.Length, Is.EqualTo(2 * 116), "the next slab is sized for twice as many events");

        bytes.Restart();
        var third = bytes.Copy(new byte[10]);
        Assert.That(MemoryMarshal.TryGetArray<byte>(third, out var thirdSlab), Is.True);
        Assert.That(thirdSlab.Array, Is.Not.SameAs(secondSlab.Array), "a slab never spans responses (its free tail is left unused)");
        Assert.That(thirdSlab.Array!.Length, Is.EqualTo(10));
    }

    [Test]
    public async Task ACallerKeepingEveryResponseOfALiveOrdinaryWatchReadsExactlyTheWrittenBytes()
    {
        // 3,000 puts (values of varied lengths, a few larger than a slab) and 10 deletes, read along in
        // responses of up to 256 events while the writer goes on: every event is compared only after
        // the last response was read, so a slab written again by a later response would show.
        var seed = Environment.TickCount;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        await using var store = OpenOn(new FaultInjectingFileSystem(seed), new MvccStoreOptions { Watch = new WatchOptions { MaxBufferedEvents = 100_000 } });
        await using var watch = store.Watch(Prefix("s/")).GetAsyncEnumerator();
        var expected = new List<string>();
        var kept = new List<WatchResponse>();
        var live = new HashSet<string>();
        for (int batch = 0; batch < 30; batch++)
        {
            var writes = new List<Task>();
            for (int i = 0; i < 100; i++)
            {
                string key = $"s/{random.Next(500)}";
                int length = random.Next(30) == 0 ? random.Next(EventBytes.MaxSlabBytes, 2 * EventBytes.MaxSlabBytes) : random.Next(0, 120);
                string value = string.Concat(Enumerable.Range(0, length).Select(_ => (char)('a' + random.Next(26))));
                writes.Add(store.PutAsync(new PutRequest { Key = B(key), Value = B(value) }).AsTask());
                expected.Add($"put {key}={value}");
                live.Add(key);
            }

            await Task.WhenAll(writes).WaitAsync(TimeSpan.FromMinutes(1));
            if (batch % 3 == 2)
            {
                string deleted = live.Order(StringComparer.Ordinal).ElementAt(random.Next(live.Count));
                store.Delete(deleted);
                live.Remove(deleted);
                expected.Add($"delete {deleted}");
            }

            kept.Add(watch.Next("a response while the writer goes on"));
        }

        long last = store.Revision;
        while (kept[^1].Header.Revision < last)
        {
            kept.Add(watch.Next("the rest"));
        }

        var events = kept.SelectMany(r => r.Events).ToList();
        Assert.That(events.Select(e => Show(e)[..Show(e).LastIndexOf('@')]), Is.EqualTo(expected), "every kept event holds the bytes written, in order");
        Assert.That(store.Watches.FellBehindCount, Is.Zero, "it stayed on the live path");
    }
}
