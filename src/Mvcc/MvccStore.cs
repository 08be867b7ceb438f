using System.Buffers;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Mvcc.Watch;
using EmbeddedRaft.Storage;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// etcd's revisioned key-value store (its <c>mvcc</c> package with the KV service's semantics) in one
/// B+tree file: a global revision that grows by one per write transaction that changes something,
/// every key's history of versions, ranges at past revisions, transactions with compares, and
/// compaction. Anyone who knows etcd v3's KV API knows this store: same revision numbering, range
/// semantics, responses and errors (<see cref="MvccException"/> carries etcd's message and gRPC code).
/// </summary>
/// <remarks>
/// <para>Threading: every member is safe to call from any thread. Reads (<see cref="Range"/>,
/// <see cref="HashKV"/>) run on the calling thread against a consistent point of history and never
/// wait for disk writes; writes are queued to one writer thread and applied in the order they were
/// queued.</para>
/// <para>Durability (<see cref="MvccStoreOptions.Durability"/>): by default a write's task completes
/// once the write is on disk, and concurrent writes share a commit. With
/// <see cref="MvccDurability.NoSync"/> (under Raft) it completes once applied; writes reach the B+tree
/// in batches with the <see cref="ConsistentIndex"/> they carry, and <see cref="SyncAsync"/> makes
/// them durable. Either way a read sees exactly the writes at or below its revision, committed to
/// disk or not.</para>
/// <para>Failure: a request etcd would refuse throws an <see cref="MvccException"/> (or an
/// <see cref="ArgumentException"/> for what etcd has no error for) and changes nothing. When a write
/// or flush fails, the writers waiting for it get that exception and from then on every operation
/// throws <see cref="StorageFaultedException"/>; dispose the store and open it again, which recovers
/// what was durable.</para>
/// <para>Files: one B+tree file, <c>mvcc.db</c>, in the store's directory (format in docs/formats.md),
/// with its <c>.lock</c> file; one open store per directory.</para>
/// </remarks>
public sealed partial class MvccStore : IAsyncDisposable, IDisposable
{
    private readonly StoreState _state;
    private readonly StoreWriter _writer;

    /// <summary>Completions of puts, deletes and txns, reused: enough for two full batches in flight.</summary>
    private readonly WriteOpPool _ops;
    private readonly WatchHub _watches;
    private readonly IFileSystem _fileSystem;
    private int _disposed;

    private MvccStore(IFileSystem fileSystem, string directory, StoreState state, IEnumerable<CompactionJob> resumedCompactions)
    {
        _fileSystem = fileSystem;
        Directory = directory;
        _state = state;
        _watches = new WatchHub(state);
        _writer = new StoreWriter(state, resumedCompactions, _watches);
        _ops = new WriteOpPool(Math.Clamp(state.Options.BatchLimit * 2, 1024, 65536));
        StartLeaseExpiry();
    }

    /// <summary>The directory the store lives in.</summary>
    public string Directory { get; }

    /// <summary>The current revision: 1 for an empty store, then one more per write transaction that changed something.</summary>
    public long Revision => Volatile.Read(ref _state.Revision);

    /// <summary>The revision of the last compaction (reads below it fail), or -1 when the store was never compacted (as etcd).</summary>
    public long CompactRevision => Volatile.Read(ref _state.CompactRevision);

    /// <summary>
    /// The index of the last Raft entry applied (given to a write as its <c>consistentIndex</c>), 0
    /// when none was. After a crash it is the index of the last write that was durable, never ahead
    /// of the data: replay the log from the entry after it.
    /// </summary>
    public ulong ConsistentIndex => Volatile.Read(ref _state.ConsistentIndex);

    /// <summary>Keys the in-memory index holds (live keys and deleted ones whose history compaction has not yet pruned); for tests and the memory-per-key benchmark.</summary>
    internal int IndexedKeyCount
    {
        get
        {
            _state.IndexLock.EnterReadLock();
            try
            {
                return _state.Index.Count;
            }
            finally
            {
                _state.IndexLock.ExitReadLock();
            }
        }
    }

    /// <summary>Opens (or creates) the store in <paramref name="directory"/> on the real disk.</summary>
    /// <exception cref="ArgumentException">The directory is empty, or the options are inconsistent.</exception>
    /// <exception cref="StorageLockedException">Another open store holds the directory.</exception>
    /// <exception cref="CorruptionException">The file is damaged beyond what the B+tree repairs, or holds data this store cannot read.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static MvccStore Open(string directory, MvccStoreOptions? options = null) => Open(PhysicalFileSystem.Instance, directory, options);

    /// <summary>
    /// Opens (or creates) the store in <paramref name="directory"/> of <paramref name="fileSystem"/>:
    /// opens the B+tree, rebuilds the key index from it, and resumes a compaction a crash interrupted.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="fileSystem"/> is null.</exception>
    /// <exception cref="ArgumentException">The directory is empty, or the options are inconsistent.</exception>
    /// <exception cref="StorageLockedException">Another open store holds the directory.</exception>
    /// <exception cref="CorruptionException">The file is damaged beyond what the B+tree repairs, or holds data this store cannot read.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static MvccStore Open(IFileSystem fileSystem, string directory, MvccStoreOptions? options)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= MvccStoreOptions.Default;
        options.Validate();
        if (options is { Scheduler: not null, TimeProvider: { } clock })
        {
            // Deterministic mode: a lease or watch clock left at the system's would fire on the
            // thread pool in real time; the store's own clock drives them instead.
            options = options with
            {
                Leases = options.Leases.TimeProvider == TimeProvider.System ? options.Leases with { TimeProvider = clock } : options.Leases,
                Watch = options.Watch.TimeProvider == TimeProvider.System ? options.Watch with { TimeProvider = clock } : options.Watch,
            };
        }

        string path = Path.Combine(directory, StoreLoader.FileName);
        var btreeOptions = BTreeOptionsOf(options);
        var database = BTreeDatabase.Open(fileSystem, path, btreeOptions);
        try
        {
            var (state, resumed, attached) = StoreLoader.Load(database, path, options);
            Leases.LeaseLoader.Load(database, state, attached);

            // Under the B+tree's lock: a restore that did not reach its rename left only these.
            DeleteRestoreLeftovers(fileSystem, path);
            return new MvccStore(fileSystem, directory, state, resumed);
        }
        catch
        {
            database.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads a key or a range at the current or a past revision (etcd's <c>Range</c>), on the calling
    /// thread, without waiting for the writer.
    /// </summary>
    /// <exception cref="MvccException">An empty key or an undefined sort option (etcd's errors).</exception>
    /// <exception cref="FutureRevisionException">The revision is above <see cref="Revision"/>.</exception>
    /// <exception cref="RevisionCompactedException">The revision is below <see cref="CompactRevision"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A negative limit or revision.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed earlier.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public RangeResponse Range(RangeRequest request)
    {
        RequestValidator.CheckRange(request);
        return RangeValidated(request);
    }

    /// <summary><see cref="Range"/> for a request the caller has passed through <see cref="RequestValidator.CheckRange"/> already.</summary>
    internal RangeResponse RangeValidated(RangeRequest request)
    {
        ThrowIfDisposed();

        // A single key (no range end), the common read, is found without the lists of a range.
        bool single = request.RangeEnd.IsEmpty;
        List<Index.Revision>? revisions = null;
        Index.Revision? found = null;
        long count;
        long current;
        SharedReadView? view = null;
        _state.IndexLock.EnterReadLock();
        try
        {
            _state.ThrowIfFailed();
            current = _state.Revision;
            if (RevisionToRead(request.Revision, current, out long at) is { } error)
            {
                throw error;
            }

            if (single)
            {
                if (RangeEvaluator.TryFindSingle(_state.Index, request.Key.Span, at, out var modified))
                {
                    found = modified;
                }

                count = found is null ? 0 : 1;
            }
            else
            {
                (revisions, count) = RangeEvaluator.Collect(_state.Index, request.Key.Span, request.RangeEnd.Span, at, RangeEvaluator.FetchLimit(request), request.CountOnly);
            }

            // A single-key read that copies no value (none there, or count only) needs neither
            // the pending batch nor a B+tree snapshot.
            if (!single || (found is not null && !request.CountOnly))
            {
                view = SharedReadView.Acquire(_state);
            }
        }
        finally
        {
            _state.IndexLock.ExitReadLock();
        }

        // Built here, so a replicated store's header (member, term) needs no second response.
        var header = NewHeader(current);
        if (view is null)
        {
            return RangeEvaluator.FinishSingle(request, found, header, values: null);
        }

        try
        {
            return single
                ? RangeEvaluator.FinishSingle(request, found, header, view.Values)
                : RangeEvaluator.Finish(request, revisions!, count, header, view.Values);
        }
        finally
        {
            // Its values are copied into the response.
            view.Release();
        }
    }

    /// <summary>
    /// How many single-key reads <see cref="RangeSinglesValidated"/> makes under one hold of the key
    /// index's read lock: a writer waits for at most one slice, not a whole read-index group (up to
    /// ~1,000 reads at 1,024 clients). 64 overlaps enough B+tree misses per step and holds the lock
    /// for a few microseconds.
    /// </summary>
    internal const int SingleReadsPerSlice = 64;

    /// <summary>
    /// <see cref="RangeValidated"/> of many single-key requests (no range end) at once, for the
    /// linearizable reads one read-index round released: in slices of <see cref="SingleReadsPerSlice"/>,
    /// each slice under one index lock and one read view, its B+tree lookups made together
    /// (<see cref="ValueSource.ReadMany"/>, the cache misses of each step overlapped). Each request's
    /// answer is what <see cref="RangeValidated"/> would have given it when its slice took the lock:
    /// its response in <paramref name="responses"/>, or its error (a future or compacted revision, ...)
    /// in <paramref name="errors"/>. Never throws: a failure of a slice as a whole (a corrupt page, a
    /// failed or disposed store) has each request of that slice read on its own, for its own error.
    /// </summary>
    /// <remarks>
    /// Each slice reads at the store's revision when it takes the lock (a later slice may see writes
    /// an earlier one did not). That is still linearizable for a read-index group: the group
    /// completed only once this store had applied up to its read point, so every slice's revision is
    /// at or after it (the revision only grows), and every request is still in flight (answered after
    /// this returns), so the moment its slice took the lock lies inside the read's own interval — as
    /// it did for a read made alone whenever its continuation ran. Concurrent reads need not see one
    /// state.
    /// </remarks>
    internal void RangeSinglesValidated(ReadOnlySpan<RangeRequest> requests, Span<RangeResponse?> responses, Span<Exception?> errors)
    {
        for (int start = 0; start < requests.Length; start += SingleReadsPerSlice)
        {
            int length = Math.Min(SingleReadsPerSlice, requests.Length - start);
            RangeSinglesSlice(requests.Slice(start, length), responses.Slice(start, length), errors.Slice(start, length));
        }
    }

    private void RangeSinglesSlice(ReadOnlySpan<RangeRequest> requests, Span<RangeResponse?> responses, Span<Exception?> errors)
    {
        try
        {
            RangeSinglesTogether(requests, responses, errors);
            return;
        }
        catch (Exception)
        {
            // Below: one at a time, each read's own answer or error, as the reads one at a time gave.
        }

        for (int i = 0; i < requests.Length; i++)
        {
            try
            {
                responses[i] = RangeValidated(requests[i]);
                errors[i] = null;
            }
            catch (Exception e)
            {
                responses[i] = null;
                errors[i] = e;
            }
        }
    }

    private void RangeSinglesTogether(ReadOnlySpan<RangeRequest> requests, Span<RangeResponse?> responses, Span<Exception?> errors)
    {
        ThrowIfDisposed();
        int n = requests.Length;
        var found = ArrayPool<Index.Revision>.Shared.Rent(n);
        var has = ArrayPool<bool>.Shared.Rent(n);
        var toRead = ArrayPool<Index.Revision>.Shared.Rent(n);
        var keysOnly = ArrayPool<bool>.Shared.Rent(n);
        var kvs = ArrayPool<KeyValue>.Shared.Rent(n);
        var keys = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(n);
        var atMain = ArrayPool<long>.Shared.Rent(n);
        try
        {
            int reads = 0;
            long current;
            SharedReadView? view = null;
            _state.IndexLock.EnterReadLock();
            try
            {
                _state.ThrowIfFailed();
                current = _state.Revision;

                // The revision each request reads at (or its error), then every key looked up at
                // once (KeyIndex.TryGetMany: the lookups' cache misses overlap).
                for (int i = 0; i < n; i++)
                {
                    var request = requests[i];
                    if (!request.RangeEnd.IsEmpty)
                    {
                        throw new ArgumentException("Only single-key requests are read together.", nameof(requests));
                    }

                    responses[i] = null;
                    errors[i] = RevisionToRead(request.Revision, current, out long at);
                    keys[i] = request.Key;

                    // A request with an error looks its key up at revision 0, before any write (not found).
                    atMain[i] = errors[i] is null ? at : 0;
                }

                _state.Index.TryGetMany(keys.AsSpan(0, n), atMain.AsSpan(0, n), has.AsSpan(0, n), found.AsSpan(0, n));
                for (int i = 0; i < n; i++)
                {
                    has[i] &= errors[i] is null;
                    if (has[i] && !requests[i].CountOnly)
                    {
                        toRead[reads] = found[i];
                        keysOnly[reads++] = requests[i].KeysOnly;
                    }
                }

                if (reads > 0)
                {
                    view = SharedReadView.Acquire(_state);
                }
            }
            finally
            {
                _state.IndexLock.ExitReadLock();
            }

            try
            {
                view?.Values.ReadMany(toRead.AsSpan(0, reads), keysOnly.AsSpan(0, reads), kvs.AsSpan(0, reads));
            }
            finally
            {
                // Its values are copied into the key-values.
                view?.Release();
            }

            int read = 0;
            for (int i = 0; i < n; i++)
            {
                if (errors[i] is not null)
                {
                    continue;
                }

                // Built here, so a replicated store's header (member, term) needs no second response.
                var header = NewHeader(current);
                responses[i] = has[i] && !requests[i].CountOnly
                    ? RangeEvaluator.FinishSingleRead(requests[i], kvs[read++], header)
                    : RangeEvaluator.FinishSingle(requests[i], has[i] ? found[i] : (Index.Revision?)null, header, values: null);
            }
        }
        finally
        {
            ArrayPool<long>.Shared.Return(atMain);
            ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(keys, clearArray: true);
            ArrayPool<KeyValue>.Shared.Return(kvs, clearArray: true);
            ArrayPool<bool>.Shared.Return(keysOnly);
            ArrayPool<Index.Revision>.Shared.Return(toRead);
            ArrayPool<bool>.Shared.Return(has);
            ArrayPool<Index.Revision>.Shared.Return(found);
        }
    }

    /// <summary>
    /// The revision a read of <paramref name="requested"/> sees (0 or less: <paramref name="current"/>),
    /// or the error for a future or compacted one; under the index lock, <paramref name="current"/>
    /// the store's revision read under it.
    /// </summary>
    private Exception? RevisionToRead(long requested, long current, out long at)
    {
        at = requested <= 0 ? current : requested;
        if (requested > current)
        {
            return new FutureRevisionException(requested, current);
        }

        return at < _state.CompactRevision ? new RevisionCompactedException(at, _state.CompactRevision) : null;
    }

    /// <summary>Writes a key (etcd's <c>Put</c>); see <see cref="MvccStoreOptions.Durability"/> for when the task completes.</summary>
    /// <param name="request">The put.</param>
    /// <param name="consistentIndex">The Raft index that produced this write (stored with it), or 0. Must exceed <see cref="ConsistentIndex"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; a write already queued may still be applied.</param>
    /// <exception cref="MvccException">Empty key, a value or lease given with IgnoreValue/IgnoreLease, IgnoreValue/IgnoreLease on a missing key, a lease that does not exist (<see cref="MvccError.LeaseNotFound"/>), or the request is larger than <see cref="MvccStoreOptions.MaxRequestBytes"/>; nothing was written.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed (this one, as its own exception, or an earlier one).</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public ValueTask<PutResponse> PutAsync(PutRequest request, ulong consistentIndex = 0, CancellationToken cancellationToken = default)
    {
        RequestValidator.CheckPut(request);
        CheckSize(RequestSize.OfPut(request));
        return Submit<PutResponse>(_ops.RentPut(request, consistentIndex), cancellationToken);
    }

    /// <summary>Deletes a key or range (etcd's <c>DeleteRange</c>); a delete of nothing creates no revision.</summary>
    /// <param name="request">The delete.</param>
    /// <param name="consistentIndex">The Raft index that produced this write, or 0. Must exceed <see cref="ConsistentIndex"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; a write already queued may still be applied.</param>
    /// <exception cref="MvccException">Empty key, or the request is too large; nothing was written.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public ValueTask<DeleteRangeResponse> DeleteRangeAsync(DeleteRangeRequest request, ulong consistentIndex = 0, CancellationToken cancellationToken = default)
    {
        RequestValidator.CheckDeleteRange(request);
        CheckSize(RequestSize.OfDeleteRange(request));
        return Submit<DeleteRangeResponse>(_ops.Rent(WriteOpKind.DeleteRange, request, consistentIndex), cancellationToken);
    }

    /// <summary>
    /// Runs a transaction (etcd's <c>Txn</c>): compares judged on the state before it, then the
    /// chosen branch's operations in order, all writes under one new revision.
    /// </summary>
    /// <param name="request">The transaction.</param>
    /// <param name="consistentIndex">The Raft index that produced this write, or 0. Must exceed <see cref="ConsistentIndex"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; a transaction already queued may still be applied.</param>
    /// <exception cref="MvccException">etcd's refusals: too many operations, a key written twice, an empty key, the request too large, IgnoreValue on a missing key, a put naming a lease that does not exist; a range in the chosen branch at a compacted (<see cref="RevisionCompactedException"/>) or future (<see cref="FutureRevisionException"/>) revision. Nothing was written.</exception>
    /// <exception cref="ArgumentException">A null list or entry, a negative limit or revision, an undefined compare.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public ValueTask<TxnResponse> TxnAsync(TxnRequest request, ulong consistentIndex = 0, CancellationToken cancellationToken = default)
    {
        RequestValidator.CheckTxn(request, _state.Options.MaxTxnOps);
        CheckSize(RequestSize.OfTxn(request));
        return Submit<TxnResponse>(_ops.Rent(WriteOpKind.Txn, request, consistentIndex), cancellationToken);
    }

    /// <summary>
    /// Compacts the history at <paramref name="revision"/> (etcd's <c>Compact</c>): from then on reads
    /// below it fail, and each key keeps only its newest version at or below it (none when that is a
    /// delete) and everything after. The compaction is recorded durably before the task completes;
    /// the history is then pruned in steps between write batches (resumed after a crash).
    /// </summary>
    /// <param name="revision">The revision to compact at: above <see cref="CompactRevision"/>, at most <see cref="Revision"/>.</param>
    /// <param name="physical">Complete the task only when the pruning is done (etcd's <c>physical</c>).</param>
    /// <param name="consistentIndex">The Raft index that produced this request, or 0. Must exceed <see cref="ConsistentIndex"/>.</param>
    /// <param name="cancellationToken">Cancels the wait; a compaction already queued may still run.</param>
    /// <exception cref="RevisionCompactedException"><paramref name="revision"/> is at or below <see cref="CompactRevision"/>.</exception>
    /// <exception cref="FutureRevisionException"><paramref name="revision"/> is above <see cref="Revision"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="revision"/> is negative.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed (also while waiting for a physical compaction).</exception>
    public ValueTask<CompactResponse> CompactAsync(long revision, bool physical = false, ulong consistentIndex = 0, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(revision);
        return Submit<CompactResponse>(new WriteOp(WriteOpKind.Compact, null, consistentIndex) { CompactRevision = revision, Physical = physical }, cancellationToken);
    }

    /// <summary>
    /// Records that the Raft entry at <paramref name="consistentIndex"/> was applied though it wrote
    /// nothing here (a configuration change, a no-op), so a restart does not replay it.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="consistentIndex"/> is 0 or does not exceed <see cref="ConsistentIndex"/>.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public async ValueTask SetConsistentIndexAsync(ulong consistentIndex, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfZero(consistentIndex);
        await Submit<object?>(new WriteOp(WriteOpKind.ConsistentIndex, null, consistentIndex), cancellationToken).ConfigureAwait(ResumeOnScheduler);
    }

    /// <summary>Makes every write applied so far durable (commits the open batch, synced); completes once it is.</summary>
    /// <exception cref="StorageFaultedException">A write or flush failed.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public async ValueTask SyncAsync(CancellationToken cancellationToken = default)
    {
        await Submit<object?>(new WriteOp(WriteOpKind.Sync, null, 0), cancellationToken).ConfigureAwait(ResumeOnScheduler);
    }

    /// <summary>Completes when every compaction queued so far (including one resumed at open) has finished its physical part (for tests and benchmarks).</summary>
    internal async ValueTask WaitForCompactionsAsync(CancellationToken cancellationToken = default)
    {
        await Submit<object?>(new WriteOp(WriteOpKind.AwaitCompactions, null, 0), cancellationToken).ConfigureAwait(ResumeOnScheduler);
    }

    /// <summary>
    /// etcd's <c>HashKV</c>: a CRC-32C over the stored revisions up to <paramref name="revision"/> (0:
    /// the current one) that the compaction keeps, equal on every replica with the same history
    /// whatever its physical compaction progress. Reads like <see cref="Range"/>; walks the whole store.
    /// </summary>
    /// <exception cref="RevisionCompactedException"><paramref name="revision"/> is positive and at or below <see cref="CompactRevision"/>.</exception>
    /// <exception cref="FutureRevisionException"><paramref name="revision"/> is above <see cref="Revision"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="revision"/> is negative.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed earlier.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public HashKVResponse HashKV(long revision = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(revision);
        ThrowIfDisposed();
        long current;
        long compact;
        long at;
        var keep = new HashSet<Index.Revision>();
        PendingBatch batch;
        List<PendingBatch.Entry> pending;
        Transaction snapshot;
        _state.IndexLock.EnterReadLock();
        try
        {
            _state.ThrowIfFailed();
            current = _state.Revision;
            compact = _state.CompactRevision;
            if (revision > 0 && revision <= compact)
            {
                throw new RevisionCompactedException(revision, compact);
            }

            if (revision > current)
            {
                throw new FutureRevisionException(revision, current);
            }

            at = revision == 0 ? current : revision;
            _state.Index.Keep(at, keep);

            batch = _state.Pending;
            pending = batch.UpTo(at);
            snapshot = _state.Database.BeginRead();
            batch.Hold();
        }
        finally
        {
            _state.IndexLock.ExitReadLock();
        }

        try
        {
            using (snapshot)
            {
                uint hash = KvHash.Compute(snapshot.OpenBucket(MetaKeys.KeyBucket)!, pending, at, compact, keep);
                return new HashKVResponse { Header = new ResponseHeader { Revision = current }, Hash = hash, CompactRevision = compact, HashRevision = at };
            }
        }
        finally
        {
            batch.Release();
        }
    }

    // ------------------------------------------------------------ watches (issue 16)

    /// <summary>
    /// Opens a watch (etcd's <c>Watch</c>) on a key, a range or a prefix: enumerate the returned
    /// <see cref="WatchStream"/> with <c>await foreach</c> and dispose it when done. The watch exists
    /// from this call: with start revision 0 it reports every write shown to watches after it.
    /// See <see cref="WatchStream"/> for the guarantees and how a watch ends.
    /// </summary>
    /// <remarks>
    /// A revision is shown to watches once readers see it and, with <see cref="MvccDurability.Synced"/>,
    /// once it is durable (before the write's task completes); with <see cref="MvccDurability.NoSync"/>
    /// once applied, as etcd (docs/architecture.md, "Watches"). Thread-safe.
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">The key is empty.</exception>
    /// <exception cref="ArgumentException">A negative start revision, or a range end not above the key.</exception>
    /// <exception cref="StorageFaultedException">A write or flush failed earlier.</exception>
    /// <exception cref="ObjectDisposedException">The store is disposed.</exception>
    public WatchStream Watch(WatchRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        ThrowIfDisposed();
        _state.ThrowIfFailed();
        return new WatchStream(this, _watches, _watches.Register(request));
    }

    /// <summary>
    /// The responses of a watch on <paramref name="request"/>, for <c>await foreach</c>: <see cref="Watch"/>
    /// opened when the enumeration starts and disposed when it ends (leaving the loop or cancelling
    /// <paramref name="cancellationToken"/>, which throws <see cref="OperationCanceledException"/>).
    /// Use <see cref="Watch"/> instead to request progress notifications on demand.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="request"/> is null.</exception>
    /// <exception cref="MvccException">The key is empty (thrown here, before enumerating).</exception>
    /// <exception cref="ArgumentException">A negative start revision, or a range end not above the key (thrown here).</exception>
    public IAsyncEnumerable<WatchResponse> WatchAsync(WatchRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        return EnumerateWatchAsync(request, cancellationToken);
    }

    /// <summary>The hub of this store's watches (for tests).</summary>
    internal WatchHub Watches => _watches;

    /// <summary>Batches the writer committed since the store opened (for benchmarks).</summary>
    internal long BatchesCommitted => _writer.BatchesCommitted;

    /// <summary>The lock of the key index (for tests: a reader holding it stops the writer at its next index change).</summary>
    internal ReaderWriterLockSlim IndexLock => _state.IndexLock;

    private async IAsyncEnumerable<WatchResponse> EnumerateWatchAsync(WatchRequest request, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var watch = Watch(request);
        await foreach (var response in watch.WithCancellation(cancellationToken).ConfigureAwait(ResumeOnScheduler))
        {
            yield return response;
        }
    }

    /// <summary>
    /// Stops the writer after committing (synced) every write it applied, waits for it, and closes
    /// the file. Writes queued after this began fail with <see cref="ObjectDisposedException"/>.
    /// Does nothing the second time.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            StopLeaseExpiry();
            _writer.Stop();
        }
        finally
        {
            // After the writer's last commit notified its revisions: watches end after what they buffered.
            _watches.Close(new ObjectDisposedException(nameof(MvccStore)));
            _state.Lessor.Close();

            // The reads' shared B+tree snapshot ends with its last reader.
            _state.IndexLock.EnterWriteLock();
            try
            {
                SharedReadView.Retire(_state);
            }
            finally
            {
                _state.IndexLock.ExitWriteLock();
            }

            // The index lock is left to the collector: a reader racing with disposal may still hold
            // it, and disposing a held ReaderWriterLockSlim throws.
            _state.Database.Dispose();
        }
    }

    /// <summary><see cref="Dispose"/>, run on a thread-pool thread so the caller's thread does not block on the writer.</summary>
    /// <remarks>In deterministic mode (<see cref="MvccStoreOptions.Scheduler"/> set) it runs <see cref="Dispose"/> on the calling thread, which runs the writer's last steps itself and never blocks.</remarks>
    public async ValueTask DisposeAsync()
    {
        if (ResumeOnScheduler)
        {
            Dispose();
            return;
        }

        await Task.Run(Dispose).ConfigureAwait(false);
    }

    private void CheckSize(long requestBytes)
    {
        if (requestBytes + RequestSize.WrapperBytes > _state.Options.MaxRequestBytes)
        {
            throw new MvccException(MvccError.RequestTooLarge, $"{MvccException.MessageOf(MvccError.RequestTooLarge)} ({requestBytes + RequestSize.WrapperBytes} bytes; MaxRequestBytes is {_state.Options.MaxRequestBytes})");
        }
    }

    /// <summary>
    /// Queues <paramref name="op"/> for the writer; the result completes with it. Failures before
    /// queueing (cancelled, disposed, faulted) come back as a faulted result, as from an async method.
    /// </summary>
    private ValueTask<T> Submit<T>(WriteOp op, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        try
        {
            ThrowIfDisposed();
            _state.ThrowIfFailed();
            _writer.Enqueue(op);
        }
        catch (Exception e) when (e is ObjectDisposedException or StorageFaultedException)
        {
            return ValueTask.FromException<T>(e);
        }

        var completion = op.AsValueTask<T>();

        // Only a wait that can be cancelled needs a task to race the token against.
        return cancellationToken.CanBeCanceled ? new ValueTask<T>(SchedulerWaits.WaitAsync(completion.AsTask(), cancellationToken)) : completion;
    }

    /// <summary>
    /// Deterministic mode (<see cref="MvccStoreOptions.Scheduler"/> set): the store's own awaits
    /// resume on the caller's scheduler, so nothing leaves it; otherwise they do not come back to the
    /// caller's context (ConfigureAwait(false), as a library should).
    /// </summary>
    internal bool ResumeOnScheduler => _state.Options.Scheduler is not null;

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
