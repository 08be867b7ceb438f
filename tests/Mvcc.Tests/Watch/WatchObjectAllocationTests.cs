namespace EmbeddedRaft.Mvcc.Tests.Watch;

/// <summary>
/// The objects a watch hands out cost only themselves: an event made with its key-value, or a
/// response made with its header, does not first allocate an empty default one to throw away (a
/// property initializer did: 80 bytes more per event delivered, docs/benchmarks.md "Watches, session 11").
/// </summary>
public sealed class WatchObjectAllocationTests
{
    [Test]
    public void AnEventMadeWithItsKeyValueAllocatesNoOtherKeyValue()
    {
        var kv = new KeyValue { Key = new byte[] { 1 }, ModRevision = 2 };
        _ = new WatchEvent { Type = WatchEventType.Put, Kv = kv }; // warm-up (type loading)
        long before = GC.GetAllocatedBytesForCurrentThread();
        var made = new WatchEvent { Type = WatchEventType.Put, Kv = kv };
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(made.Kv, Is.SameAs(kv));
        Assert.That(allocated, Is.LessThan(64), "the event alone (40 bytes on 64-bit), not a KeyValue besides (80)");
    }

    [Test]
    public void AResponseMadeWithItsHeaderAllocatesNoOtherHeader()
    {
        var header = new ResponseHeader { Revision = 7 };
        IReadOnlyList<WatchEvent> events = [];
        _ = new WatchResponse { Header = header, Events = events }; // warm-up (type loading)
        long before = GC.GetAllocatedBytesForCurrentThread();
        var made = new WatchResponse { Header = header, Events = events };
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.That(made.Header, Is.SameAs(header));
        Assert.That(allocated, Is.LessThan(48), "the response alone (32 bytes on 64-bit), not a ResponseHeader besides (48)");
    }

    [Test]
    public void AnEventOrResponseMadeWithoutKeyValueOrHeaderStillHasOne()
    {
        Assert.That(new WatchEvent().Kv, Is.Not.Null);
        Assert.That(new WatchEvent().Kv.Key.IsEmpty, Is.True);
        Assert.That(new WatchResponse().Header.Revision, Is.Zero);
    }
}
