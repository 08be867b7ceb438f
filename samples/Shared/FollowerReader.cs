using System.Text;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Reads, from a follower, the key whose put was acknowledged last (by any member), right after the
/// acknowledgement. A linearizable read must see it: the put finished before the read began. A
/// serializable read (the follower's local state, no round trip to the leader) made just before
/// may not have it yet; those are counted to show the difference, not as failures.
/// </summary>
internal sealed class FollowerReader(StoryCluster cluster, WriteLoad load)
{
    private static readonly TimeSpan s_idleWait = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan s_callLimit = TimeSpan.FromSeconds(10);
    private long _linearizableReads;
    private long _staleLinearizableReads;
    private long _serializableReads;
    private long _staleSerializableReads;
    private long _failedReads;
    private string? _firstStaleRead;

    /// <summary>Linearizable reads made on followers.</summary>
    public long LinearizableReads => Interlocked.Read(ref _linearizableReads);

    /// <summary>Linearizable reads that missed an acknowledged put (must stay 0).</summary>
    public long StaleLinearizableReads => Interlocked.Read(ref _staleLinearizableReads);

    /// <summary>Serializable reads made on followers.</summary>
    public long SerializableReads => Interlocked.Read(ref _serializableReads);

    /// <summary>Serializable reads that did not yet see the put (allowed: that is what serializable means).</summary>
    public long StaleSerializableReads => Interlocked.Read(ref _staleSerializableReads);

    /// <summary>Reads that failed while a leader was being replaced (not counted either way).</summary>
    public long FailedReads => Interlocked.Read(ref _failedReads);

    /// <summary>What the first stale linearizable read saw, if there was one.</summary>
    public string? FirstStaleRead => Volatile.Read(ref _firstStaleRead);

    /// <summary>Reads until <paramref name="stop"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        AcknowledgedPut? previous = null;
        while (!stop.IsCancellationRequested)
        {
            var put = load.LastAcknowledged;
            var follower = PickFollower(put);
            if (put is null || put == previous || follower is null)
            {
                await Task.Delay(s_idleWait, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            previous = put;
            try
            {
                using var limit = new CancellationTokenSource(s_callLimit);
                var request = new RangeRequest { Key = Encoding.UTF8.GetBytes(put.Key) };
                var local = await follower.RunningStore.RangeAsync(request, ReadConsistency.Serializable, limit.Token).ConfigureAwait(false);
                Interlocked.Increment(ref _serializableReads);
                if (local.Kvs.Count == 0)
                {
                    Interlocked.Increment(ref _staleSerializableReads);
                }

                var read = await follower.RunningStore.RangeAsync(request, ReadConsistency.Linearizable, limit.Token).ConfigureAwait(false);
                Interlocked.Increment(ref _linearizableReads);
                if (read.Kvs.Count == 0 || read.Header.Revision < put.Revision)
                {
                    Interlocked.Increment(ref _staleLinearizableReads);
                    Interlocked.CompareExchange(ref _firstStaleRead,
                        $"{follower} answered revision {read.Header.Revision} with {read.Kvs.Count} key(s) for {put.Key}, acknowledged at revision {put.Revision} by member {put.MemberId}", null);
                }
            }
            catch (Exception e) when (WriteLoad.IsCausedByLeaderChange(e))
            {
                Interlocked.Increment(ref _failedReads);
            }
        }
    }

    /// <summary>A running member that is not the leader and did not answer the put itself, if there is one.</summary>
    private StoryMember? PickFollower(AcknowledgedPut? put)
    {
        ulong leaderId = cluster.KnownLeader()?.Id ?? 0;
        return cluster.Running.FirstOrDefault(m => m.Id != leaderId && m.Id != put?.MemberId)
            ?? cluster.Running.FirstOrDefault(m => m.Id != leaderId);
    }
}
