using System.Runtime.CompilerServices;
using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// Reads a watcher's missed events from the store's history (etcd's <c>syncWatchers</c>, per
/// watcher): the stored revisions from its next revision up to a target, in revision order, from a
/// B+tree snapshot merged with the pending batch it took under the index lock (as a range read).
/// Runs on the consumer's thread: a lagging watcher costs the writer nothing.
/// </summary>
internal static class HistoryReader
{
    /// <summary>Revisions scanned per read at most (whole revisions are never cut), so one read holds a snapshot briefly.</summary>
    public const int MaxScannedPerRead = 16_384;

    /// <summary>
    /// Events per read (one catch-up response) at most, whole revisions (a larger revision is read
    /// alone, never cut): the live path's piece (<see cref="WatchHub.MaxEventsPerResponse"/>). Not
    /// <see cref="WatchOptions.MaxBufferedEvents"/>: that bounds the live events a lagging consumer
    /// leaves waiting (memory the writer fills); a history read is the consumer's own, one response
    /// at a time, and reading it in pieces of a small buffer (2, 16) gave one snapshot, one seek and
    /// one response per couple of events (etcd's unsynced watchers likewise get up to 1,000
    /// revisions per batch whatever their channel holds, <c>watchBatchMaxRevs</c>).
    /// </summary>
    public const int MaxEventsPerRead = WatchHub.MaxEventsPerResponse;

    /// <summary>
    /// Bytes of keys and values per read (one catch-up response) at most, whole revisions (a larger
    /// revision is read alone, never cut): a response of large values holds fewer events (as etcd's watch server
    /// splits a response past its request size limit, 1.5 MiB by default, keeping at least one event).
    /// All of a read's events are alive at once, in the response: this bounds that memory.
    /// </summary>
    public const int MaxBytesPerRead = 1 << 20;

    /// <summary>
    /// The events of <paramref name="watcher"/>'s range in revisions [<paramref name="next"/>,
    /// <paramref name="target"/>], whole revisions up to <see cref="MaxEventsPerRead"/> events and
    /// <see cref="MaxBytesPerRead"/> bytes of keys and values (a revision that would take the read
    /// past either is left to the next read; a larger revision is read alone), and the revision
    /// through which every one was read (<paramref name="target"/> when all were).
    /// </summary>
    /// <exception cref="RevisionCompactedException"><paramref name="next"/> is at or below the compact revision: its history may be gone.</exception>
    /// <exception cref="StorageFaultedException">The store failed a write.</exception>
    public static (List<WatchEvent> Events, long CoveredRevision) Read(StoreState state, Watcher watcher, long next, long target)
    {
        PendingBatch pending;
        Storage.BTree.Transaction snapshot;
        state.IndexLock.EnterReadLock();
        try
        {
            state.ThrowIfFailed();

            // Stricter than etcd (which refuses only below the compact revision): a compaction at C
            // drops the tombstones of deletes at C, so history from C itself may miss events.
            long compact = state.CompactRevision;
            if (next <= compact)
            {
                throw new RevisionCompactedException(next, compact);
            }

            pending = state.Pending;
            snapshot = state.Database.BeginRead();

            // Held until the last value is read from it, so the writer does not reuse its buffers.
            pending.Hold();
        }
        finally
        {
            state.IndexLock.ExitReadLock();
        }

        var events = new List<WatchEvent>();
        using (snapshot)
        {
            try
            {
                return ReadMerged(state, watcher, next, target, pending, snapshot, events);
            }
            finally
            {
                pending.Release();
            }
        }
    }

    /// <summary>The merge of <paramref name="pending"/> (held) and <paramref name="snapshot"/> that <see cref="Read"/> returns.</summary>
    private static (List<WatchEvent> Events, long CoveredRevision) ReadMerged(
        StoreState state, Watcher watcher, long next, long target, PendingBatch pending, Storage.BTree.Transaction snapshot, List<WatchEvent> events)
    {
        {
            var bucket = snapshot.OpenBucket(MetaKeys.KeyBucket) ?? throw new InvariantViolationException("MVCC watch: the key bucket is missing.");

            // Uncommitted revisions: in the batch, not in the snapshot (a revision in both, when the
            // batch was committed but not yet swapped out, is read once).
            var uncommitted = pending.Count == 0 ? [] : pending.Between(next, target);
            int u = 0;
            var cursor = bucket.CreateCursor();
            bool more = cursor.Seek(RevisionKey.Start(next));
            long currentMain = next - 1;
            int scanned = 0;
            long bytes = 0;

            // Where the current revision's events start in the piece.
            int revisionStart = 0;
            while (true)
            {
                Revision revision;
                bool tombstone;
                ReadOnlySpan<byte> stored;
                Revision storedRevision = default;
                bool storedTombstone = false;
                if (more && !RevisionKey.TryDecode(cursor.Key, out storedRevision, out storedTombstone))
                {
                    throw new CorruptionException(state.Path, 0, $"the revision bucket holds a malformed key {MvccText.Show(cursor.Key)}");
                }

                bool fromTree = more && (u >= uncommitted.Count || storedRevision <= uncommitted[u].Revision);
                if (fromTree)
                {
                    revision = storedRevision;
                    tombstone = storedTombstone;
                    stored = cursor.Value;
                    if (u < uncommitted.Count && uncommitted[u].Revision == storedRevision)
                    {
                        u++;
                    }
                }
                else if (u < uncommitted.Count)
                {
                    revision = uncommitted[u].Revision;
                    tombstone = uncommitted[u].Tombstone;
                    stored = uncommitted[u].StoredValue.Span;
                    u++;
                }
                else
                {
                    return (events, target);
                }

                if (revision.Main > target)
                {
                    return (events, target);
                }

                if (revision.Main != currentMain)
                {
                    // A revision boundary: the only place a read may stop.
                    if (events.Count >= MaxEventsPerRead || bytes >= MaxBytesPerRead || scanned >= MaxScannedPerRead)
                    {
                        return (events, currentMain);
                    }

                    currentMain = revision.Main;
                    revisionStart = events.Count;
                }

                scanned++;
                var key = KeyOf(state, revision, tombstone, stored);
                if (watcher.Accepts(tombstone) && watcher.Matches(key))
                {
                    var watchEvent = ToEvent(state, revision, tombstone, stored);
                    events.Add(watchEvent);
                    bytes += watchEvent.Kv.Key.Length + watchEvent.Kv.Value.Length;
                    if (revisionStart > 0 && (events.Count > MaxEventsPerRead || bytes > MaxBytesPerRead))
                    {
                        // This revision does not fit after the piece's earlier ones: the piece ends
                        // before it (the next read starts with it), as a live piece does.
                        events.RemoveRange(revisionStart, events.Count - revisionStart);
                        return (events, currentMain - 1);
                    }
                }

                if (fromTree)
                {
                    more = cursor.Next();
                }
            }
        }
    }

    /// <summary>The event a stored revision is: a put's key-value, or a delete's key and revision.</summary>
    /// <exception cref="CorruptionException">The stored bytes are malformed.</exception>
    public static WatchEvent ToEvent(StoreState state, Revision revision, bool tombstone, ReadOnlySpan<byte> stored)
    {
        if (!StoredValue.TryDecode(stored, revision.Main, tombstone, out var decoded))
        {
            throw StoredValue.Malformed(state.Path, revision, tombstone, stored);
        }

        return ToEvent(revision.Main, tombstone, stored, decoded);
    }

    /// <summary>The event of a stored revision already decoded (<paramref name="decoded"/> from <paramref name="stored"/>).</summary>
    public static WatchEvent ToEvent(long main, bool tombstone, ReadOnlySpan<byte> stored, in StoredValue.Decoded decoded)
    {
        if (tombstone)
        {
            return new WatchEvent { Type = WatchEventType.Delete, Kv = new KeyValue { Key = StoredValue.KeyOf(stored, decoded).ToArray(), ModRevision = main } };
        }

        // Key and value lie side by side in the stored bytes: one copy, one array, two slices of it.
        var body = StoredValue.BodyOf(stored, decoded).ToArray();
        return new WatchEvent
        {
            Type = WatchEventType.Put,
            Kv = new KeyValue
            {
                Key = body.AsMemory(0, decoded.KeyLength),
                CreateRevision = decoded.CreateRevision,
                ModRevision = main,
                Version = decoded.Version,
                Value = body.AsMemory(decoded.KeyLength),
                Lease = decoded.Lease,
            },
        };
    }

    /// <summary>
    /// As <see cref="ToEvent(long, bool, ReadOnlySpan{byte}, in StoredValue.Decoded)"/>, written into
    /// <paramref name="target"/> (a reusing watch's own instance, <see cref="WatchRequest.ReuseEvents"/>)
    /// with the key and value as slices of <paramref name="stored"/>: no copy, no allocation.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static WatchEvent OverwriteEvent(WatchEvent target, long main, bool tombstone, ReadOnlyMemory<byte> stored, in StoredValue.Decoded decoded)
    {
        var key = stored.Slice(decoded.HeaderSizeBytes, decoded.KeyLength);
        if (tombstone)
        {
            target.Overwrite(WatchEventType.Delete, prevKv: null);
            target.Kv.Overwrite(key, ReadOnlyMemory<byte>.Empty, createRevision: 0, main, version: 0, lease: 0);
        }
        else
        {
            target.Overwrite(WatchEventType.Put, prevKv: null);
            target.Kv.Overwrite(key, stored[(decoded.HeaderSizeBytes + decoded.KeyLength)..], decoded.CreateRevision, main, decoded.Version, decoded.Lease);
        }

        return target;
    }

    /// <summary>The key of a stored revision.</summary>
    /// <exception cref="CorruptionException">The stored bytes are malformed.</exception>
    public static ReadOnlySpan<byte> KeyOf(StoreState state, Revision revision, bool tombstone, ReadOnlySpan<byte> stored)
    {
        if (!StoredValue.TryDecode(stored, revision.Main, tombstone, out var decoded))
        {
            throw StoredValue.Malformed(state.Path, revision, tombstone, stored);
        }

        return stored.Slice(decoded.HeaderSizeBytes, decoded.KeyLength);
    }
}
