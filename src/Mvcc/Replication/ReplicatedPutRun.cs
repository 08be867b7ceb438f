using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// Consecutive plain puts of one committed Raft batch (no <see cref="PutRequest.PrevKv"/>, already
/// validated), queued to the store's writer as one request (<see cref="MvccStore.ApplyPutRunAsync"/>)
/// instead of one each: the writer applies them in order, each exactly as a put answered by its
/// revision (its own revision, its entry's index as consistent index, watches told), and records
/// per put its revision or its refusal.
/// </summary>
/// <remarks>
/// <para>Ownership: the apply pipeline fills it (<see cref="Add"/>), then only the writer touches it
/// until the run's request completes; after that the apply pipeline reads the results and
/// <see cref="Clear"/>s it for a later batch. A put's key and value slice its command's bytes, which
/// stay valid until the batch's apply completes (IStateMachine), and are dropped by <see cref="Clear"/>.</para>
/// <para>Why the fields are copied into arrays rather than kept as one request object per put
/// (session 30, docs/benchmarks.md "Replicated puts, session 30"): the run lives for the member's
/// life, so its arrays and any request objects it kept are in gen2, and a young command's slice
/// stored into an old object sets that object's 256-byte card, which the next gen0 collection
/// scans. A kept request per put dirtied one card per put on every member (~3 per replicated put);
/// the puts' slices side by side in two arrays dirty one card per 16 puts each. The writer sees
/// each put through one view request the run refills (<see cref="RequestAt"/>).</para>
/// </remarks>
internal sealed class ReplicatedPutRun
{
    private const byte IgnoreValueFlag = 1;
    private const byte IgnoreLeaseFlag = 2;

    private ReadOnlyMemory<byte>[] _keys = new ReadOnlyMemory<byte>[16];
    private ReadOnlyMemory<byte>[] _values = new ReadOnlyMemory<byte>[16];
    private long[] _leases = new long[16];
    private byte[] _flags = new byte[16];
    private ulong[] _indexes = new ulong[16];
    private long[] _revisions = new long[16];
    private Exception?[] _refusals = new Exception?[16];
    private int _answered;

    // What RequestAt hands the writer: the put it asked for last (one at a time).
    private readonly PutRequest _view = new();

    /// <summary>How many puts the run holds.</summary>
    public int Count { get; private set; }

    /// <summary>
    /// Appends a plain put (no <see cref="PutRequest.PrevKv"/>) and the index of its log entry
    /// (indexes grow along the run). The run copies the request's fields: the caller may decode its
    /// next put into the same request.
    /// </summary>
    public void Add(PutRequest request, ulong index)
    {
        if (Count > 0 && index <= _indexes[Count - 1])
        {
            throw new InvariantViolationException($"Replicated put run: entry {index} follows entry {_indexes[Count - 1]}.");
        }

        if (request.PrevKv)
        {
            throw new InvariantViolationException($"Replicated put run: the put at entry {index} asks for its previous key-value (a run's puts are answered by their revision).");
        }

        if (Count == _keys.Length)
        {
            int grown = 2 * Count;
            Array.Resize(ref _keys, grown);
            Array.Resize(ref _values, grown);
            Array.Resize(ref _leases, grown);
            Array.Resize(ref _flags, grown);
            Array.Resize(ref _indexes, grown);
            Array.Resize(ref _revisions, grown);
            Array.Resize(ref _refusals, grown);
        }

        _keys[Count] = request.Key;
        _values[Count] = request.Value;
        _leases[Count] = request.Lease;
        _flags[Count] = (byte)((request.IgnoreValue ? IgnoreValueFlag : 0) | (request.IgnoreLease ? IgnoreLeaseFlag : 0));
        _indexes[Count] = index;
        _revisions[Count] = 0;
        _refusals[Count] = null;
        Count++;
    }

    /// <summary>
    /// Writer: the <paramref name="i"/>th put, as a request the run refills on every call (valid until
    /// the next call; the writer applies one put at a time and keeps nothing of the request).
    /// </summary>
    public PutRequest RequestAt(int i)
    {
        if ((uint)i >= (uint)Count)
        {
            throw new InvariantViolationException($"Replicated put run: no put at {i} of {Count} (cleared while queued?).");
        }

        var flags = _flags[i];
        _view.Overwrite(_keys[i], _values[i], _leases[i], prevKv: false, (flags & IgnoreValueFlag) != 0, (flags & IgnoreLeaseFlag) != 0);
        return _view;
    }

    /// <summary>Writer: the index of the <paramref name="i"/>th put's log entry.</summary>
    public ulong IndexAt(int i) => _indexes[i];

    /// <summary>Writer: the <paramref name="i"/>th put was applied at <paramref name="revision"/>.</summary>
    public void Answer(int i, long revision)
    {
        if (revision <= 0)
        {
            throw new InvariantViolationException($"Replicated put run: the put at index {_indexes[i]} was answered with revision {revision}.");
        }

        _revisions[i] = revision;
        _answered++;
    }

    /// <summary>Writer: the <paramref name="i"/>th put was refused (it changed nothing).</summary>
    public void Refuse(int i, Exception refusal)
    {
        _refusals[i] = refusal;
        _answered++;
    }

    /// <summary>
    /// Apply pipeline, once the run's request completed: appends the <paramref name="i"/>th put's
    /// result to <paramref name="results"/> (its revision, unboxed, or its refusal).
    /// </summary>
    public void AddResultTo(int i, ReplicatedApplyResults results)
    {
        if (_answered != Count)
        {
            throw new InvariantViolationException($"Replicated put run: {_answered} of {Count} puts answered when the run completed.");
        }

        if (_refusals[i] is { } refusal)
        {
            results.Add(refusal);
            return;
        }

        results.AddRevision(_revisions[i]);
    }

    /// <summary>
    /// Empties the run for a later batch, dropping its slices of this batch's commands and its
    /// refusals. Only once the run's request completed: the writer is done with it then.
    /// </summary>
    public void Clear()
    {
        Array.Clear(_keys, 0, Count);
        Array.Clear(_values, 0, Count);
        Array.Clear(_refusals, 0, Count);
        _view.Clear();
        Count = 0;
        _answered = 0;
    }
}
