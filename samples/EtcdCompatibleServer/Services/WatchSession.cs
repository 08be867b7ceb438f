using System.Threading.Channels;
using EmbeddedRaft.Mvcc;
using Google.Protobuf;
using Grpc.Core;
using Etcd = EmbeddedRaft.Samples.EtcdCompatibleServer.Etcdserverpb;

namespace EmbeddedRaft.Samples.EtcdCompatibleServer.Services;

/// <summary>
/// One gRPC watch stream, as etcd 3.4's serverWatchStream: a receive loop that creates and cancels
/// watches and answers progress requests, one pump per watch that turns the store's
/// <see cref="WatchStream"/> into responses, and one send loop that writes every response to the
/// stream in order (a gRPC stream takes one writer at a time).
/// </summary>
/// <remarks>
/// <para>Order guarantees: a watch's "created" response precedes its events (it is queued before
/// its pump starts); its "canceled" response follows its last event (the pump has stopped before
/// it is queued). Backpressure: the outbox is bounded, so a client that reads slowly stalls the
/// pumps, and the store's watches then fall back to reading history: writers never wait.</para>
/// <para>Ends: when the client cancels the call (the request stream ending is not the end: etcd
/// keeps sending the watches' events after a client half-closes), or with the error of a watch
/// that failed for another reason than compaction (the store stopped or faulted), which ends the
/// call with etcd's status for it.</para>
/// </remarks>
internal sealed class WatchSession : IAsyncDisposable
{
    /// <summary>etcd's id for a response that belongs to no watch (a progress response).</summary>
    private const long NoWatchId = -1;

    private readonly EtcdMember _member;
    private readonly IServerStreamWriter<Etcd.WatchResponse> _responses;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _ending;
    private readonly CancellationToken _callAborted;
    private readonly Channel<Etcd.WatchResponse> _outbox = Channel.CreateBounded<Etcd.WatchResponse>(
        new BoundedChannelOptions(256) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly Lock _lock = new();
    private readonly Dictionary<long, ActiveWatch> _watches = [];
    private long _nextWatchId;
    private Exception? _failure;

    /// <param name="ending">Ends the session: the call aborted, or the member stopping.</param>
    /// <param name="callAborted">The call's own abort (the client went away): the only token a response write is cancelled by.</param>
    public WatchSession(EtcdMember member, IServerStreamWriter<Etcd.WatchResponse> responses, ILogger logger, CancellationToken ending, CancellationToken callAborted)
    {
        _member = member;
        _responses = responses;
        _logger = logger;
        _ending = CancellationTokenSource.CreateLinkedTokenSource(ending);
        _callAborted = callAborted;
    }

    /// <summary>Serves the stream until the call ends; throws the failure that ended it, if any.</summary>
    public async Task RunAsync(IAsyncStreamReader<Etcd.WatchRequest> requests)
    {
        Task sending = SendLoopAsync();
        try
        {
            while (await requests.MoveNext(_ending.Token).ConfigureAwait(false))
            {
                await HandleAsync(requests.Current).ConfigureAwait(false);
            }

            // The client half-closed: its watches go on until it cancels the call (etcd's rule).
            await Task.Delay(Timeout.Infinite, _ending.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_ending.IsCancellationRequested)
        {
            // The call ended, or a watch failed (below).
        }
        catch (IOException)
        {
            // The client went away mid-request: nothing to answer.
        }

        _outbox.Writer.TryComplete();
        await sending.ConfigureAwait(false);
        lock (_lock)
        {
            if (_failure is not null)
            {
                throw _failure;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _ending.CancelAsync().ConfigureAwait(false);
        List<ActiveWatch> watches;
        lock (_lock)
        {
            watches = [.. _watches.Values];
            _watches.Clear();
        }

        foreach (ActiveWatch watch in watches)
        {
            await watch.StopAsync().ConfigureAwait(false);
        }

        _ending.Dispose();
    }

    private async Task HandleAsync(Etcd.WatchRequest request)
    {
        switch (request.RequestUnionCase)
        {
            case Etcd.WatchRequest.RequestUnionOneofCase.CreateRequest:
                await CreateAsync(request.CreateRequest).ConfigureAwait(false);
                break;
            case Etcd.WatchRequest.RequestUnionOneofCase.CancelRequest:
                await CancelAsync(request.CancelRequest.WatchId).ConfigureAwait(false);
                break;
            case Etcd.WatchRequest.RequestUnionOneofCase.ProgressRequest:
                await ProgressAsync().ConfigureAwait(false);
                break;
            default:
                // etcd ignores a request it does not know rather than ending the stream.
                break;
        }
    }

    private async Task CreateAsync(Etcd.WatchCreateRequest create)
    {
        long currentRevision = _member.Store.Status.Revision;
        long id;
        lock (_lock)
        {
            id = create.WatchId;
            if (id == 0)
            {
                // etcd numbers a stream's watches from 0, skipping ids the client chose.
                while (_watches.ContainsKey(_nextWatchId))
                {
                    _nextWatchId++;
                }

                id = _nextWatchId++;
            }
            else if (_watches.ContainsKey(id))
            {
                id = NoWatchId;
            }
        }

        if (id == NoWatchId)
        {
            await EnqueueAsync(Refused(currentRevision, "mvcc: duplicate watch ID provided on the WatchStream")).ConfigureAwait(false);
            return;
        }

        WatchStream stream;
        try
        {
            stream = _member.Store.Watch(new WatchRequest
            {
                // etcd: an empty key means the smallest key, "\0"; range_end keeps its meaning
                // (empty = one key, "\0" = every key from key on, else [key, range_end)).
                Key = create.Key.IsEmpty ? new byte[] { 0 } : create.Key.Memory,
                RangeEnd = create.RangeEnd.Memory,
                StartRevision = create.StartRevision,
                NoPut = create.Filters.Contains(Etcd.WatchCreateRequest.Types.FilterType.Noput),
                NoDelete = create.Filters.Contains(Etcd.WatchCreateRequest.Types.FilterType.Nodelete),
                PrevKv = create.PrevKv,
                ProgressNotify = create.ProgressNotify,
            });
        }
        catch (Exception e) when (e is MvccException or ArgumentException)
        {
            await EnqueueAsync(Refused(currentRevision, EtcdErrors.ToRpc(e)?.Status.Detail ?? e.Message)).ConfigureAwait(false);
            return;
        }

        var watch = new ActiveWatch(id, stream, create.PrevKv, create.Fragment, _ending.Token);
        lock (_lock)
        {
            _watches[id] = watch;
        }

        // A watch "from now" reports every event after the created response's revision: take that
        // revision from the watch itself, not from a read that a write may have overtaken.
        long createdRevision = create.StartRevision == 0 ? stream.StartRevision - 1 : currentRevision;
        await EnqueueAsync(new Etcd.WatchResponse { Header = _member.Header(createdRevision), WatchId = id, Created = true }).ConfigureAwait(false);
        watch.Pump = PumpAsync(watch);
    }

    private Etcd.WatchResponse Refused(long revision, string reason) =>
        new() { Header = _member.Header(revision), WatchId = NoWatchId, Created = true, Canceled = true, CancelReason = reason };

    private async Task CancelAsync(long id)
    {
        ActiveWatch? watch;
        lock (_lock)
        {
            if (_watches.Remove(id, out watch) is false)
            {
                // etcd answers nothing for an id it does not know.
                return;
            }
        }

        await watch!.StopAsync().ConfigureAwait(false);
        await EnqueueAsync(new Etcd.WatchResponse { Header = _member.Header(_member.Store.Status.Revision), WatchId = id, Canceled = true }).ConfigureAwait(false);
    }

    /// <summary>
    /// A progress request: each watch of the stream answers with a response without events whose
    /// revision it has delivered every event up to (the store's own progress mechanism, so the
    /// revision never runs ahead of events still queued); a stream without watches gets etcd's
    /// single response with watch id -1 and the current revision. etcd's clients handle both: a
    /// response with no events is a progress notification for its watch, or for all at -1.
    /// </summary>
    private async Task ProgressAsync()
    {
        List<ActiveWatch> watches;
        lock (_lock)
        {
            watches = [.. _watches.Values];
        }

        if (watches.Count == 0)
        {
            await EnqueueAsync(new Etcd.WatchResponse { Header = _member.Header(_member.Store.Status.Revision), WatchId = NoWatchId }).ConfigureAwait(false);
            return;
        }

        foreach (ActiveWatch watch in watches)
        {
            watch.Stream.RequestProgress();
        }
    }

    private async Task PumpAsync(ActiveWatch watch)
    {
        try
        {
            await foreach (WatchResponse response in watch.Stream.WithCancellation(watch.Stopping).ConfigureAwait(false))
            {
                var proto = new Etcd.WatchResponse { Header = _member.Header(response.Header.Revision), WatchId = watch.Id };
                foreach (WatchEvent e in response.Events)
                {
                    proto.Events.Add(ProtoMapping.ToProto(e, watch.PrevKv));
                }

                if (watch.Fragment)
                {
                    foreach (Etcd.WatchResponse fragment in Fragments(proto, _member.Options.MaxRequestBytes))
                    {
                        await EnqueueAsync(fragment, watch.Stopping).ConfigureAwait(false);
                    }
                }
                else
                {
                    await EnqueueAsync(proto, watch.Stopping).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (watch.Stopping.IsCancellationRequested)
        {
            // Cancelled by the client, or the stream ended.
        }
        catch (RevisionCompactedException e)
        {
            // etcd cancels a watch whose start revision was compacted away and says from where to
            // start again; clients re-watch from there.
            lock (_lock)
            {
                _watches.Remove(watch.Id);
            }

            watch.Stream.Dispose();
            await EnqueueAsync(
                new Etcd.WatchResponse { Header = _member.Header(_member.Store.Status.Revision), WatchId = watch.Id, Canceled = true, CompactRevision = e.CompactRevision },
                _ending.Token).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The store stopped or faulted: the whole call ends with etcd's status for it.
            EtcdServerLog.WatchStreamFailed(_logger, e.Message, e);
            lock (_lock)
            {
                _failure ??= e;
            }

            await _ending.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// etcd's sendFragments: a response over <paramref name="maxBytes"/> with more than one event
    /// goes out in pieces of at most that size (one event may exceed it alone), each marked
    /// fragment but the last; a client reassembles them into one response.
    /// </summary>
    internal static IEnumerable<Etcd.WatchResponse> Fragments(Etcd.WatchResponse response, int maxBytes)
    {
        if (response.CalculateSize() < maxBytes || response.Events.Count < 2)
        {
            yield return response;
            yield break;
        }

        int next = 0;
        while (next < response.Events.Count)
        {
            Etcd.WatchResponse piece = response.Clone();
            piece.Events.Clear();
            piece.Fragment = true;
            while (next < response.Events.Count)
            {
                piece.Events.Add(response.Events[next]);
                if (piece.Events.Count > 1 && piece.CalculateSize() >= maxBytes)
                {
                    piece.Events.RemoveAt(piece.Events.Count - 1);
                    break;
                }

                next++;
            }

            piece.Fragment = next < response.Events.Count;
            yield return piece;
        }
    }

    private ValueTask EnqueueAsync(Etcd.WatchResponse response) => EnqueueAsync(response, _ending.Token);

    private ValueTask EnqueueAsync(Etcd.WatchResponse response, CancellationToken cancellationToken) =>
        _outbox.Writer.WriteAsync(response, cancellationToken);

    private async Task SendLoopAsync()
    {
        try
        {
            await foreach (Etcd.WatchResponse response in _outbox.Reader.ReadAllAsync(_ending.Token).ConfigureAwait(false))
            {
                // Cancelled only by the call's own abort: a write cancelled by its token aborts the
                // HTTP/2 stream (RST_STREAM CANCEL, seen by the client as CANCELLED, which etcd's
                // clientv3 takes as final and does not resume), so a session ending because the
                // member stops lets the write in flight finish and the call end with its status.
                await _responses.WriteAsync(response, _callAborted).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or InvalidOperationException or IOException)
        {
            // The call ended (a write after the client went away throws InvalidOperationException).
            await _ending.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One watch of the stream: the store's watch and the pump that forwards it.</summary>
    private sealed class ActiveWatch(long id, WatchStream stream, bool prevKv, bool fragment, CancellationToken sessionEnding)
    {
        private readonly CancellationTokenSource _stopping = CancellationTokenSource.CreateLinkedTokenSource(sessionEnding);

        public long Id { get; } = id;

        public WatchStream Stream { get; } = stream;

        public bool PrevKv { get; } = prevKv;

        public bool Fragment { get; } = fragment;

        public CancellationToken Stopping => _stopping.Token;

        public Task Pump { get; set; } = Task.CompletedTask;

        /// <summary>Stops the pump and waits for it, so nothing of this watch is queued afterwards.</summary>
        public async Task StopAsync()
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            await Pump.ConfigureAwait(false);
            Stream.Dispose();
            _stopping.Dispose();
        }
    }
}
