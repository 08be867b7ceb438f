using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// One MVCC write transaction on the writer thread, as etcd's <c>storeTxnWrite</c> driven by its
/// <c>applierV3backend</c>: every change takes main revision <see cref="BeginRevision"/> + 1 and the
/// next sub revision, goes into the batch's B+tree transaction, the pending batch and the index
/// (readers cannot see it until <see cref="End"/> publishes the revision), and later operations of
/// the transaction see earlier ones.
/// </summary>
/// <remarks>
/// <para>Every check that can refuse a request runs before the first change (<see cref="HasChanged"/>
/// stays false while a refusal is possible), so a refused request leaves the store as it was.</para>
/// <para>Reuse: the writer makes one per batch (the batch's B+tree bucket and pending batch do not
/// change until it commits) and calls <see cref="Begin"/> before each request, which resets every
/// per-request field, so a write allocates no transaction of its own. Nothing keeps a reference to
/// it past the request: watches are handed the revision and count, never the transaction.</para>
/// </remarks>
internal sealed class WriteTransaction
{
    private readonly StoreState _state;
    private readonly Bucket _keys;
    private readonly ValueSource _values;
    private readonly PendingBatch _pending;

    /// <summary>A transaction for the batch whose key bucket is <paramref name="keys"/>; call <see cref="Begin"/> before each request.</summary>
    public WriteTransaction(StoreState state, Bucket keys)
    {
        _state = state;
        _keys = keys;
        _pending = state.Pending;
        _values = new ValueSource(pending: null, keys, state.Path);
        BeginRevision = -1;
    }

    /// <summary>The revision the store was at when the current request began; -1 before the first <see cref="Begin"/>.</summary>
    public long BeginRevision { get; private set; }

    /// <summary>Starts the next request of the batch: at the store's current revision, no changes yet.</summary>
    /// <exception cref="InvariantViolationException">The pending batch was swapped since this transaction was made (it outlived its batch's commit).</exception>
    public WriteTransaction Begin()
    {
        if (!ReferenceEquals(_pending, _state.Pending))
        {
            throw new InvariantViolationException("MVCC writer: a write transaction was reused after its batch committed.");
        }

        BeginRevision = _state.Revision;
        Changes = 0;
        HasChanged = false;
        _published = false;
        return this;
    }

    /// <summary>Changes made so far (the next sub revision).</summary>
    public int Changes { get; private set; }

    /// <summary>True once anything was written (even if only partly): a failure after this faults the store.</summary>
    public bool HasChanged { get; private set; }

    /// <summary>The request's one change published its revision with its index change (<see cref="PutAnsweredByRevision"/>): <see cref="End"/> has nothing left to publish.</summary>
    private bool _published;

    /// <summary>The revision reads inside the transaction see: the begin revision, or the new one once something changed (etcd).</summary>
    private long ReadRevision => BeginRevision + (Changes > 0 ? 1 : 0);

    private long WriteRevision => BeginRevision + 1;

    /// <summary>Publishes the transaction's revision when it changed something; returns the revision the store is at.</summary>
    public long End()
    {
        if (Changes > 0)
        {
            if (!_published)
            {
                _state.Publish(WriteRevision);
            }

            return WriteRevision;
        }

        return BeginRevision;
    }

    // ------------------------------------------------------------ top-level requests (etcd applier)

    public PutResponse Put(PutRequest request)
    {
        CheckTopLevelPut(request);
        return ApplyPut(request);
    }

    /// <summary>etcd's applier Put checks: IgnoreValue / IgnoreLease need the key to exist; the lease must exist.</summary>
    private void CheckTopLevelPut(PutRequest request)
    {
        if ((request.IgnoreValue || request.IgnoreLease) && Current(request.Key.Span) is null)
        {
            throw new MvccException(MvccError.KeyNotFound);
        }

        CheckLease(request);
    }

    /// <summary>
    /// A top-level put whose answer is only its revision (no <see cref="PutRequest.PrevKv"/>): the
    /// same checks and change as <see cref="Put"/>, but no response objects on the writer thread
    /// (the caller's are built when it takes the result), and, as the request's only change, its
    /// index change and the revision's publication under one take of the index lock.
    /// </summary>
    /// <returns>The revision the put created.</returns>
    /// <exception cref="InvariantViolationException">The request asks for its previous key-value, or the transaction already changed something.</exception>
    public long PutAnsweredByRevision(PutRequest request)
    {
        if (request.PrevKv || Changes != 0)
        {
            throw new InvariantViolationException("MVCC txn: a put answered by its revision must be the request's only change and not ask for its previous key-value.");
        }

        CheckTopLevelPut(request);
        var (value, lease) = PutValueAndLease(request, out _);
        WritePut(request.Key.Span, value.Span, lease, publish: true);
        return WriteRevision;
    }

    public DeleteRangeResponse DeleteRange(DeleteRangeRequest request) => ApplyDeleteRange(request);

    public TxnResponse Txn(TxnRequest request)
    {
        // As etcd: every compare (nested ones too) is judged on the state before the transaction,
        // then the chosen operations are checked (puts first, then ranges), and only then applied.
        var path = new List<bool>();
        ComputePath(request, path);
        int cursor = 0;
        CheckRequests(request, path, ref cursor, CheckPut);
        cursor = 0;
        CheckRequests(request, path, ref cursor, CheckRange);
        cursor = 0;
        var responses = Apply(request, path, ref cursor, out bool succeeded);
        return new TxnResponse { Header = new ResponseHeader { Revision = ReadRevision }, Succeeded = succeeded, Responses = responses };
    }

    // ------------------------------------------------------------ compares and checks

    private void ComputePath(TxnRequest request, List<bool> path)
    {
        bool succeeded = true;
        foreach (var compare in request.Compare)
        {
            if (!Holds(compare))
            {
                succeeded = false;
                break;
            }
        }

        path.Add(succeeded);
        foreach (var op in succeeded ? request.Success : request.Failure)
        {
            if (op.RequestTxn is { } nested)
            {
                ComputePath(nested, path);
            }
        }
    }

    /// <summary>etcd's <c>applyCompare</c>: true when the compare holds for every key of its range, judged on an absent key when there is none (false for a value compare).</summary>
    private bool Holds(Compare compare)
    {
        var (revisions, _) = RangeEvaluator.Collect(_state.Index, compare.Key.Span, compare.RangeEnd.Span, ReadRevision, limit: 0, countOnly: false);
        if (revisions.Count == 0)
        {
            return compare.Target != CompareTarget.Value && CompareKeyValue(compare, new KeyValue());
        }

        foreach (var revision in revisions)
        {
            if (!CompareKeyValue(compare, _values.Read(revision, keysOnly: false)))
            {
                return false;
            }
        }

        return true;
    }

    private static bool CompareKeyValue(Compare compare, KeyValue kv)
    {
        int result = compare.Target switch
        {
            CompareTarget.Version => kv.Version.CompareTo(compare.Version),
            CompareTarget.Create => kv.CreateRevision.CompareTo(compare.CreateRevision),
            CompareTarget.Mod => kv.ModRevision.CompareTo(compare.ModRevision),
            CompareTarget.Value => kv.Value.Span.SequenceCompareTo(compare.Value.Span),
            CompareTarget.Lease => kv.Lease.CompareTo(compare.Lease),
            _ => throw new InvariantViolationException($"MVCC txn: compare target {compare.Target} passed validation."),
        };
        return compare.Result switch
        {
            CompareResult.Equal => result == 0,
            CompareResult.NotEqual => result != 0,
            CompareResult.Greater => result > 0,
            CompareResult.Less => result < 0,
            _ => throw new InvariantViolationException($"MVCC txn: compare result {compare.Result} passed validation."),
        };
    }

    private static void CheckRequests(TxnRequest request, List<bool> path, ref int cursor, Action<RequestOp> check)
    {
        bool succeeded = path[cursor++];
        foreach (var op in succeeded ? request.Success : request.Failure)
        {
            if (op.RequestTxn is { } nested)
            {
                CheckRequests(nested, path, ref cursor, check);
            }
            else
            {
                check(op);
            }
        }
    }

    private void CheckPut(RequestOp op)
    {
        if (op.RequestPut is { } put && (put.IgnoreValue || put.IgnoreLease) && Current(put.Key.Span) is null)
        {
            throw new MvccException(MvccError.KeyNotFound);
        }

        if (op.RequestPut is { } leased)
        {
            CheckLease(leased);
        }
    }

    /// <summary>etcd's applier: a put may only name a lease that exists.</summary>
    private void CheckLease(PutRequest put)
    {
        if (put.Lease != 0 && !_state.Lessor.Contains(put.Lease))
        {
            throw new MvccException(MvccError.LeaseNotFound);
        }
    }

    private void CheckRange(RequestOp op)
    {
        if (op.RequestRange is not { Revision: not 0 } range)
        {
            return;
        }

        if (range.Revision > BeginRevision)
        {
            throw new FutureRevisionException(range.Revision, BeginRevision);
        }

        if (range.Revision < _state.CompactRevision)
        {
            throw new RevisionCompactedException(range.Revision, _state.CompactRevision);
        }
    }

    // ------------------------------------------------------------ applying

    private List<ResponseOp> Apply(TxnRequest request, List<bool> path, ref int cursor, out bool succeeded)
    {
        succeeded = path[cursor++];
        var ops = succeeded ? request.Success : request.Failure;
        var responses = new List<ResponseOp>(ops.Count);
        foreach (var op in ops)
        {
            switch (op)
            {
                case { RequestRange: { } range }:
                    responses.Add(new ResponseOp { ResponseRange = ApplyRange(range) });
                    break;
                case { RequestPut: { } put }:
                    responses.Add(new ResponseOp { ResponsePut = ApplyPut(put) });
                    break;
                case { RequestDeleteRange: { } delete }:
                    responses.Add(new ResponseOp { ResponseDeleteRange = ApplyDeleteRange(delete) });
                    break;
                case { RequestTxn: { } nested }:
                    var nestedResponses = Apply(nested, path, ref cursor, out bool nestedSucceeded);
                    // etcd leaves a nested transaction's header empty (revision 0).
                    responses.Add(new ResponseOp { ResponseTxn = new TxnResponse { Header = new ResponseHeader(), Succeeded = nestedSucceeded, Responses = nestedResponses } });
                    break;
                default:
                    throw new InvariantViolationException("MVCC txn: an empty operation passed validation.");
            }
        }

        return responses;
    }

    private RangeResponse ApplyRange(RangeRequest request)
    {
        long atRevision = request.Revision == 0 ? ReadRevision : request.Revision;
        var (revisions, count) = RangeEvaluator.Collect(_state.Index, request.Key.Span, request.RangeEnd.Span, atRevision, RangeEvaluator.FetchLimit(request), request.CountOnly);
        return RangeEvaluator.Finish(request, revisions, count, ReadRevision, _values);
    }

    private PutResponse ApplyPut(PutRequest request)
    {
        var (value, lease) = PutValueAndLease(request, out var previous);
        WritePut(request.Key.Span, value.Span, lease, publish: false);
        return new PutResponse { Header = new ResponseHeader { Revision = WriteRevision }, PrevKv = request.PrevKv ? previous : null };
    }

    /// <summary>The value and lease a put writes, and the key-value before it when the put needs it (IgnoreValue, IgnoreLease, PrevKv).</summary>
    private (ReadOnlyMemory<byte> Value, long Lease) PutValueAndLease(PutRequest request, out KeyValue? previous)
    {
        previous = (request.IgnoreValue || request.IgnoreLease || request.PrevKv) ? Current(request.Key.Span) : null;

        // previous is null here only when an earlier from-key delete ("\0" end) of this transaction
        // removed the key: etcd's duplicate check misses that case and etcd then crashes; this store
        // writes the empty value (or no lease) instead.
        var value = request.IgnoreValue ? previous?.Value ?? ReadOnlyMemory<byte>.Empty : request.Value;
        long lease = request.IgnoreLease ? previous?.Lease ?? 0 : request.Lease;
        return (value, lease);
    }

    private DeleteRangeResponse ApplyDeleteRange(DeleteRangeRequest request)
    {
        long atRevision = ReadRevision;
        var (revisions, _) = RangeEvaluator.Collect(_state.Index, request.Key.Span, request.RangeEnd.Span, atRevision, limit: 0, countOnly: false);
        var previous = new List<KeyValue>(revisions.Count);
        foreach (var revision in revisions)
        {
            previous.Add(_values.Read(revision, keysOnly: false));
        }

        foreach (var kv in previous)
        {
            WriteTombstone(kv.Key.Span);
        }

        // etcd: a delete of nothing reports the revision the transaction is at, not a new one.
        long header = previous.Count != 0 || Changes > 0 ? WriteRevision : BeginRevision;
        return new DeleteRangeResponse { Header = new ResponseHeader { Revision = header }, Deleted = previous.Count, PrevKvs = request.PrevKv ? previous : [] };
    }

    /// <summary>The key's current key-value as the transaction sees it, or null.</summary>
    private KeyValue? Current(ReadOnlySpan<byte> key)
    {
        return _state.Index.TryGet(key, ReadRevision, out var modified, out _, out _)
            ? _values.Read(modified, keysOnly: false)
            : null;
    }

    /// <summary>
    /// Writes a put of <paramref name="key"/> at the transaction's revision: B+tree, pending batch,
    /// lease attachment, then the index. With <paramref name="publish"/> (the request's only
    /// change) the revision is published under the same take of the index lock as the index change.
    /// </summary>
    private void WritePut(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, long lease, bool publish)
    {
        long revision = WriteRevision;

        // One search: a new key is added where it was not found (only this thread changes the index).
        bool exists = _state.Index.Find(key, out var position);
        long createRevision = revision;
        long version = 1;
        if (exists && _state.Index.TryGet(position, revision, out _, out var created, out long currentVersion))
        {
            createRevision = created.Main;
            version = currentVersion + 1;
        }

        var at = new Revision(revision, Changes);

        // Encoded once, into the pending batch's shared buffer, and copied from there into the B+tree.
        var stored = _pending.Allocate(StoredValue.PutSizeBytes(revision, key.Length, value.Length, createRevision, version, lease));
        StoredValue.WritePut(stored.Span, revision, key, value, createRevision, version, lease);
        Span<byte> revisionKey = stackalloc byte[RevisionKey.SizeBytes];
        RevisionKey.Write(revisionKey, at, tombstone: false);
        HasChanged = true;
        _keys.Put(revisionKey, stored.Span);
        _pending.Add(at, tombstone: false, stored);

        // The key leaves its previous lease (if another) and joins this one (etcd's Detach/Attach),
        // before the revision can be published below.
        _state.Lessor.Attach(key, lease);
        _state.IndexLock.EnterWriteLock();
        try
        {
            if (exists)
            {
                _state.Index.Put(position, at);
            }
            else
            {
                // A new key: its one put is held in the index's arrays, no history object (KeyIndex).
                _state.Index.Add(position, key, at);
            }

            if (publish)
            {
                _state.PublishHoldingIndexLock(revision);
                _published = true;
            }
        }
        finally
        {
            _state.IndexLock.ExitWriteLock();
        }

        Changes++;
    }

    private void WriteTombstone(ReadOnlySpan<byte> key)
    {
        var at = new Revision(WriteRevision, Changes);
        if (!_state.Index.Find(key, out var position))
        {
            throw new InvariantViolationException($"MVCC txn: deleting {MvccText.Show(key)}, which the index does not hold.");
        }

        var stored = _pending.Allocate(StoredValue.TombstoneSizeBytes(key.Length));
        StoredValue.WriteTombstone(stored.Span, key);
        Span<byte> revisionKey = stackalloc byte[RevisionKey.TombstoneSizeBytes];
        RevisionKey.Write(revisionKey, at, tombstone: true);
        HasChanged = true;
        _keys.Put(revisionKey, stored.Span);
        _pending.Add(at, tombstone: true, stored);
        _state.IndexLock.EnterWriteLock();
        try
        {
            if (!_state.Index.Tombstone(position, at))
            {
                throw new InvariantViolationException($"MVCC txn: deleting {MvccText.Show(key)}, which is not live.");
            }
        }
        finally
        {
            _state.IndexLock.ExitWriteLock();
        }

        _state.Lessor.Attach(key, 0);
        Changes++;
    }
}
