namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// Where a watcher is (etcd's synced and unsynced watcher groups). Transitions, all under the hub's lock:
/// <list type="bullet">
/// <item><see cref="Synced"/> -&gt; <see cref="Unsynced"/>: the writer found its buffer full for a revision (nothing is dropped: the revision becomes its <see cref="Watcher.Next"/>).</item>
/// <item><see cref="Unsynced"/> -&gt; <see cref="Synced"/>: its consumer read history through the hub's notified revision (<see cref="Watcher.Next"/> is one above it).</item>
/// <item>any -&gt; <see cref="Ended"/>: compacted history, the store closed or faulted, or the consumer left.</item>
/// </list>
/// </summary>
internal enum WatcherState
{
    /// <summary>In the hub's index: the writer appends every matching event at or above <see cref="Watcher.StartRevision"/> to its buffer.</summary>
    Synced,

    /// <summary>Out of the index: every event below <see cref="Watcher.Next"/> is in its buffer or delivered; its consumer reads the rest from the store's history.</summary>
    Unsynced,

    /// <summary>Out of the index for good; its consumer delivers what is buffered, then ends with <see cref="Watcher.EndReason"/>.</summary>
    Ended,
}
