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
/// Ownership: the apply pipeline fills it (<see cref="Add"/>), then only the writer touches it
/// until the run's request completes; after that the apply pipeline reads the results and
/// <see cref="Clear"/>s it for a later batch. The requests slice their commands' bytes, which stay
/// valid until the batch's apply completes (IStateMachine), and are dropped by <see cref="Clear"/>;
/// the request objects themselves stay with the run and are refilled in later batches (a run
/// dropped because its request never completed takes its requests with it).
/// </remarks>
internal sealed class ReplicatedPutRun
{
    private PutRequest?[] _requests = new PutRequest?[16];
    private ulong[] _indexes = new ulong[16];
    private long[] _revisions = new long[16];
    private Exception?[] _refusals = new Exception?[16];
    private int _answered;

    /// <summary>How many puts the run holds.</summary>
    public int Count { get; private set; }

    /// <summary>
    /// Appends a put and the index of its log entry (indexes grow along the run). Returns a request
    /// the caller may decode its next put into: the one this slot held in an earlier batch (cleared
    /// since), or a new one. So a member decodes its puts into the same few requests batch after
    /// batch instead of allocating one per put.
    /// </summary>
    public PutRequest Add(PutRequest request, ulong index)
    {
        if (Count > 0 && index <= _indexes[Count - 1])
        {
            throw new InvariantViolationException($"Replicated put run: entry {index} follows entry {_indexes[Count - 1]}.");
        }

        if (Count == _requests.Length)
        {
            int grown = 2 * Count;
            Array.Resize(ref _requests, grown);
            Array.Resize(ref _indexes, grown);
            Array.Resize(ref _revisions, grown);
            Array.Resize(ref _refusals, grown);
        }

        var spare = _requests[Count];
        if (ReferenceEquals(spare, request))
        {
            throw new InvariantViolationException($"Replicated put run: the request for entry {index} is already in the run.");
        }

        _requests[Count] = request;
        _indexes[Count] = index;
        _revisions[Count] = 0;
        _refusals[Count] = null;
        Count++;
        return spare ?? new PutRequest();
    }

    /// <summary>Writer: the <paramref name="i"/>th put.</summary>
    public PutRequest RequestAt(int i) => _requests[i] ?? throw new InvariantViolationException($"Replicated put run: no put at {i} (cleared while queued?).");

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
    /// Empties the run for a later batch: drops the refusals, and keeps the requests as spares
    /// (handed out again by <see cref="Add"/>) with their slices of this batch's commands dropped.
    /// Only once the run's request completed: the writer is done with them then.
    /// </summary>
    public void Clear()
    {
        for (int i = 0; i < Count; i++)
        {
            _requests[i]!.Clear();
        }

        Array.Clear(_refusals, 0, Count);
        Count = 0;
        _answered = 0;
    }
}
