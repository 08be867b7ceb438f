using System.Collections;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>
/// One applied batch's results as the Raft node reads them: per command either a plain put's
/// revision, kept unboxed and boxed only when read, or any other result (a response, a refusal,
/// a pending compaction) as it is.
/// </summary>
/// <remarks>
/// Why: every member applies every put, but only the member its proposer waits on reads the put's
/// result (RaftNode reads <c>results[i]</c> for its own proposals only), so boxing each revision
/// up front cost every other member a 24 B object per put that nobody looked at. Reused from
/// batch to batch by the apply pipeline: the node reads a batch's results before it hands over
/// the next batch (<c>IStateMachine</c> applies one batch at a time), and <see cref="Clear"/>
/// drops every reference at the start of the next.
/// </remarks>
internal sealed class ReplicatedApplyResults : IReadOnlyList<object?>
{
    private long[] _revisions = new long[16];
    private object?[] _others = new object?[16];
    private bool[] _isRevision = new bool[16];

    /// <summary>How many results the batch has so far.</summary>
    public int Count { get; private set; }

    /// <summary>The <paramref name="i"/>th command's result: a put's revision is boxed here, on each read.</summary>
    public object? this[int i]
    {
        get
        {
            if ((uint)i >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(i), i, $"The batch has {Count} results.");
            }

            return _isRevision[i] ? _revisions[i] : _others[i];
        }
    }

    /// <summary>Appends a plain put's result: the revision it was applied at (positive).</summary>
    public void AddRevision(long revision)
    {
        if (revision <= 0)
        {
            throw new InvariantViolationException($"Replicated apply results: a put's revision {revision} at result {Count}.");
        }

        Grow();
        _revisions[Count] = revision;
        _isRevision[Count] = true;
        Count++;
    }

    /// <summary>Appends any other result (a response, a refusal, a pending compaction, or null).</summary>
    public void Add(object? result)
    {
        Grow();
        _others[Count] = result;
        _isRevision[Count] = false;
        Count++;
    }

    /// <summary>Empties the list for the next batch and drops the references it held.</summary>
    public void Clear()
    {
        Array.Clear(_others, 0, Count);
        Count = 0;
    }

    public IEnumerator<object?> GetEnumerator()
    {
        for (int i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private void Grow()
    {
        if (Count < _isRevision.Length)
        {
            return;
        }

        int grown = 2 * _isRevision.Length;
        Array.Resize(ref _revisions, grown);
        Array.Resize(ref _others, grown);
        Array.Resize(ref _isRevision, grown);
    }
}
