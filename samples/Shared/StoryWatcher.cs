using System.Diagnostics;
using System.Text;
using EmbeddedRaft.Mvcc;

namespace EmbeddedRaft.Samples;

/// <summary>
/// Watches every key under <see cref="WriteLoad.Prefix"/> on one member (a follower: watches are
/// served from each member's local store) from a given revision on. It counts every event and
/// checks the stream's promises as they arrive: only puts, each key once, revisions increasing. It
/// shows one event every <see cref="s_showEvery"/> so the screen stays readable.
/// </summary>
internal sealed class StoryWatcher(StoryMember member, StoryConsole console)
{
    private static readonly TimeSpan s_showEvery = TimeSpan.FromMilliseconds(400);
    private readonly HashSet<string> _keys = [];
    private long _events;
    private long _lastRevision;
    private string? _firstViolation;

    /// <summary>The member watched.</summary>
    public StoryMember Member => member;

    /// <summary>Events delivered so far.</summary>
    public long Events => Interlocked.Read(ref _events);

    /// <summary>Revision of the last response (every event up to it was delivered).</summary>
    public long LastRevision => Interlocked.Read(ref _lastRevision);

    /// <summary>The first broken promise of the stream (a duplicate, a delete, a revision going back), if any.</summary>
    public string? FirstViolation => Volatile.Read(ref _firstViolation);

    /// <summary>The distinct keys seen; read only after <see cref="RunAsync"/> ended.</summary>
    public IReadOnlySet<string> Keys => _keys;

    /// <summary>Watches from <paramref name="startRevision"/> until <paramref name="stop"/> is cancelled.</summary>
    public async Task RunAsync(long startRevision, CancellationToken stop)
    {
        byte[] prefix = Encoding.UTF8.GetBytes(WriteLoad.Prefix);
        var request = new WatchRequest { Key = prefix, RangeEnd = KeyRange.PrefixEnd(prefix), StartRevision = startRevision };
        long lastShown = 0;
        long lastEventRevision = startRevision - 1;
        try
        {
            await foreach (var response in member.RunningStore.WatchAsync(request, stop).ConfigureAwait(false))
            {
                foreach (var e in response.Events)
                {
                    string key = Encoding.UTF8.GetString(e.Kv.Key.Span);
                    // Every key is put once, one key per revision: a delete, a repeated key or a
                    // revision that does not increase breaks the watch's promise.
                    if (e.Type != WatchEventType.Put || !_keys.Add(key) || e.Kv.ModRevision <= lastEventRevision)
                    {
                        Interlocked.CompareExchange(ref _firstViolation, $"unexpected event {e.Type} {key} at revision {e.Kv.ModRevision} after revision {lastEventRevision}", null);
                    }

                    lastEventRevision = e.Kv.ModRevision;

                    Interlocked.Increment(ref _events);
                    if (Stopwatch.GetElapsedTime(lastShown) >= s_showEvery)
                    {
                        lastShown = Stopwatch.GetTimestamp();
                        console.WatchEvent($"{member}: {e.Type} {key} @ revision {e.Kv.ModRevision} (event {Events:N0})");
                    }
                }

                Interlocked.Exchange(ref _lastRevision, response.Header.Revision);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The story ended the watch.
        }
    }
}
