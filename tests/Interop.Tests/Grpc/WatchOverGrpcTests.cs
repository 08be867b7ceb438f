using EmbeddedRaft.Samples.EtcdCompatibleServer;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;
using EmbeddedRaft.Samples.EtcdCompatibleServer.Mvccpb;
using static EmbeddedRaft.Interop.Tests.Grpc.EtcdClients;

namespace EmbeddedRaft.Interop.Tests.Grpc;

/// <summary>
/// etcd's Watch stream as an etcd client uses it: several watches on one stream, filters, prev kv,
/// cancel, progress (requested and periodic), fragments, compaction, and a leader change.
/// </summary>
[TestFixture]
public sealed class WatchOverGrpcTests
{
    private const int SmallRequestBytes = 1024;

    private OurEtcdCluster _cluster = null!;
    private List<EtcdClients> _clients = null!;

    [OneTimeSetUp]
    public async Task StartCluster()
    {
        // Small requests (so a multi-key delete with prev kv needs fragments) and a short progress
        // interval (so an idle watch with progress_notify hears from the server soon).
        _cluster = await OurEtcdCluster.StartOursAsync(new EtcdServerOptions { MaxRequestBytes = SmallRequestBytes, WatchProgressInterval = TimeSpan.FromMilliseconds(100) });
        _clients = [.. _cluster.Cluster.Members.Select(m => new EtcdClients(m.ClientUrl))];
    }

    [OneTimeTearDown]
    public async Task StopCluster()
    {
        _clients.ForEach(c => c.Dispose());
        await _cluster.DisposeAsync();
    }

    [Test]
    public async Task SeveralWatchesOnOneStreamEachSeeTheirOwnRangeAndFilters()
    {
        using var watch = new WatchCall(_clients[1]);
        long all = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/multi/"), RangeEnd = Bytes("w/multi0"), PrevKv = true });
        long onlyA = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/multi/a") });
        long deletesOnly = await watch.CreateAndConfirmAsync(new WatchCreateRequest
        {
            Key = Bytes("w/multi/"),
            RangeEnd = Bytes("w/multi0"),
            Filters = { WatchCreateRequest.Types.FilterType.Noput },
        });
        Assert.That(new[] { all, onlyA, deletesOnly }, Is.Unique);

        await _clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("w/multi/a"), Value = Bytes("1") });
        await _clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("w/multi/b"), Value = Bytes("2") });
        await _clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("w/multi/a"), Value = Bytes("3") });
        await _clients[1].Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes("w/multi/b") });

        // 4 events for "all", 2 for "onlyA", 1 for "deletesOnly".
        List<WatchResponse> responses = await watch.ReadUntilAsync(r => r.Sum(x => x.Events.Count) >= 7);
        List<Event> EventsOf(long id) => [.. responses.Where(r => r.WatchId == id).SelectMany(r => r.Events)];
        Assert.That(EventsOf(all).Select(Describe), Is.EqualTo(new[] { "PUT w/multi/a=1", "PUT w/multi/b=2", "PUT w/multi/a=3 prev=1", "DELETE w/multi/b prev=2" }));
        Assert.That(EventsOf(onlyA).Select(Describe), Is.EqualTo(new[] { "PUT w/multi/a=1", "PUT w/multi/a=3" }), "no prev kv asked");
        Assert.That(EventsOf(deletesOnly).Select(Describe), Is.EqualTo(new[] { "DELETE w/multi/b" }));
        Assert.That(responses.All(r => r.Header.MemberId == _cluster.Members[1].Id && r.Header.ClusterId == _cluster.ClusterId), Is.True);
    }

    [Test]
    public async Task AWatchFromAPastRevisionReplaysHistoryAndACancelledOneStops()
    {
        PutResponse first = await _clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("w/cancel"), Value = Bytes("1") });
        await _clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("w/cancel"), Value = Bytes("2") });
        using var watch = new WatchCall(_clients[2]);
        long id = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/cancel"), StartRevision = first.Header.Revision });
        List<WatchResponse> history = await watch.ReadUntilAsync(r => r.Sum(x => x.Events.Count) >= 2);
        Assert.That(history.SelectMany(r => r.Events).Select(Describe), Is.EqualTo(new[] { "PUT w/cancel=1", "PUT w/cancel=2" }));

        await watch.SendAsync(new WatchRequest { CancelRequest = new WatchCancelRequest { WatchId = id } });
        WatchResponse canceled = await watch.NextAsync();
        Assert.That(canceled.WatchId, Is.EqualTo(id));
        Assert.That(canceled.Canceled, Is.True);

        // Nothing of the cancelled watch follows: the next response is the new watch's.
        await _clients[0].Kv.PutAsync(new PutRequest { Key = Bytes("w/cancel"), Value = Bytes("3") });
        long next = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/cancel-other") });
        Assert.That(next, Is.Not.EqualTo(id));
    }

    [Test]
    public async Task AProgressRequestReportsARevisionCoveringEveryWrite()
    {
        using var watch = new WatchCall(_clients[1]);
        long id = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/progress/none") });
        // Written through the same member: a write completes once applied there, so the member's
        // progress covers it (through another member it might not be applied here yet, as in etcd).
        PutResponse elsewhere = await _clients[1].Kv.PutAsync(new PutRequest { Key = Bytes("w/progress/other"), Value = Bytes("x") });
        await watch.SendAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
        WatchResponse progress = await watch.NextAsync();
        Assert.That(progress.Events, Is.Empty);
        Assert.That(progress.WatchId, Is.EqualTo(id));
        Assert.That(progress.Header.Revision, Is.GreaterThanOrEqualTo(elsewhere.Header.Revision));
    }

    [Test]
    public async Task AProgressRequestOnAStreamWithoutWatchesIsAnsweredWithWatchIdMinusOne()
    {
        PutResponse put = await _clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("w/progress/empty"), Value = Bytes("x") });
        using var watch = new WatchCall(_clients[2]);
        await watch.SendAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
        WatchResponse progress = await watch.NextAsync();
        Assert.That(progress.WatchId, Is.EqualTo(-1));
        Assert.That(progress.Header.Revision, Is.GreaterThanOrEqualTo(put.Header.Revision));
    }

    [Test]
    public async Task AnIdleWatchWithProgressNotifyHearsTheRevision()
    {
        using var watch = new WatchCall(_clients[0]);
        long id = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/idle"), ProgressNotify = true });
        WatchResponse progress = await watch.NextAsync();
        Assert.That(progress.WatchId, Is.EqualTo(id));
        Assert.That(progress.Events, Is.Empty);
        Assert.That(progress.Header.Revision, Is.GreaterThan(0));
    }

    [Test]
    public async Task ALargeRevisionArrivesInFragmentsOnlyWhenTheWatchAskedForThem()
    {
        string value = new('v', 300);
        for (int i = 0; i < 8; i++)
        {
            // Through the watching member: applied there before the watches start "from now".
            await _clients[1].Kv.PutAsync(new PutRequest { Key = Bytes($"w/frag/{i}"), Value = Bytes(value) });
        }

        using var fragmented = new WatchCall(_clients[1]);
        long fragmentedId = await fragmented.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/frag/"), RangeEnd = Bytes("w/frag0"), PrevKv = true, Fragment = true });
        using var whole = new WatchCall(_clients[1]);
        long wholeId = await whole.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/frag/"), RangeEnd = Bytes("w/frag0"), PrevKv = true });

        // One delete: 8 events with 300-byte previous values, over the 1 KiB limit.
        DeleteRangeResponse deleted = await _clients[2].Kv.DeleteRangeAsync(new DeleteRangeRequest { Key = Bytes("w/frag/"), RangeEnd = Bytes("w/frag0") });
        Assert.That(deleted.Deleted, Is.EqualTo(8));

        List<WatchResponse> pieces = await fragmented.ReadUntilAsync(r => r.Count > 0 && !r[^1].Fragment);
        Assert.That(pieces, Has.Count.GreaterThan(1), "split into fragments");
        Assert.That(pieces.Take(pieces.Count - 1).All(p => p.Fragment), Is.True, "every piece but the last says more follows");
        Assert.That(pieces.All(p => p.WatchId == fragmentedId && p.Header.Revision == deleted.Header.Revision), Is.True);
        Assert.That(pieces.SelectMany(p => p.Events).Select(e => e.Kv.Key.ToStringUtf8()), Is.EqualTo(Enumerable.Range(0, 8).Select(i => $"w/frag/{i}")));
        Assert.That(pieces.SelectMany(p => p.Events).All(e => e.Type == Event.Types.EventType.Delete && e.PrevKv.Value.ToStringUtf8() == value), Is.True);

        WatchResponse single = await whole.NextAsync();
        Assert.That(single.WatchId, Is.EqualTo(wholeId));
        Assert.That(single.Fragment, Is.False);
        Assert.That(single.Events, Has.Count.EqualTo(8), "without the fragment flag the revision comes whole");
    }

    [Test]
    public async Task AWatchFromACompactedRevisionIsCancelledWithTheCompactRevision()
    {
        PutResponse old = await _clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("w/compacted"), Value = Bytes("1") });
        PutResponse current = await _clients[2].Kv.PutAsync(new PutRequest { Key = Bytes("w/compacted"), Value = Bytes("2") });
        // Through the watching member: a compaction completes once applied there.
        await _clients[2].Kv.CompactAsync(new CompactionRequest { Revision = current.Header.Revision });

        using var watch = new WatchCall(_clients[2]);
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("w/compacted"), StartRevision = old.Header.Revision });
        List<WatchResponse> responses = await watch.ReadUntilAsync(r => r.Any(x => x.Canceled));
        WatchResponse canceled = responses.Single(r => r.Canceled);
        Assert.That(canceled.CompactRevision, Is.EqualTo(current.Header.Revision), "a client re-watches from here");
        Assert.That(responses.SelectMany(r => r.Events), Is.Empty);
    }

    [Test]
    public async Task AWatchIdAlreadyInUseOnTheStreamIsRefused()
    {
        using var watch = new WatchCall(_clients[0]);
        long id = await watch.CreateAndConfirmAsync(new WatchCreateRequest { Key = Bytes("w/dup"), WatchId = 42 });
        Assert.That(id, Is.EqualTo(42), "a client-chosen id is kept");
        await watch.CreateAsync(new WatchCreateRequest { Key = Bytes("w/dup2"), WatchId = 42 });
        WatchResponse refused = await watch.NextAsync();
        Assert.That(refused.Created && refused.Canceled, Is.True);
        Assert.That(refused.WatchId, Is.EqualTo(-1));
        Assert.That(refused.CancelReason, Is.EqualTo("mvcc: duplicate watch ID provided on the WatchStream"));
    }

    internal static string Describe(Event e) =>
        $"{e.Type.ToString().ToUpperInvariant()} {e.Kv.Key.ToStringUtf8()}"
        + (e.Type == Event.Types.EventType.Put ? $"={e.Kv.Value.ToStringUtf8()}" : string.Empty)
        + (e.PrevKv is null ? string.Empty : $" prev={e.PrevKv.Value.ToStringUtf8()}");
}
