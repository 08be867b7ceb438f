using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Tests.Transport;

/// <summary>
/// A receiver that records what a transport hands it: messages, unreachable reports, and the bytes
/// of each snapshot (read in the pieces the stream gives, to measure how much was ever buffered).
/// </summary>
internal sealed class RecordingReceiver : IRaftMessageReceiver
{
    private readonly Lock _lock = new();

    public List<Message> Received { get; } = [];

    public List<ulong> Unreachable { get; } = [];

    private readonly List<(int Count, TaskCompletionSource Done)> _countWaits = [];

    /// <summary>How many messages were received so far; safe to read while the transport delivers.</summary>
    public int ReceivedCount { get { lock (_lock) { return Received.Count; } } }

    /// <summary>A copy of the messages received so far; safe to read while the transport delivers.</summary>
    public List<Message> ReceivedNow { get { lock (_lock) { return [.. Received]; } } }

    /// <summary>Completes once at least <paramref name="count"/> messages have been received.</summary>
    public Task UntilReceived(int count)
    {
        lock (_lock)
        {
            if (Received.Count >= count)
            {
                return Task.CompletedTask;
            }

            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _countWaits.Add((count, done));
            return done.Task;
        }
    }

    /// <summary>The unreachable reports so far; safe to read while the transport reports.</summary>
    public ulong[] UnreachableNow { get { lock (_lock) { return [.. Unreachable]; } } }

    public List<(Message Message, byte[] Data)> Snapshots { get; } = [];

    public List<int> SnapshotThreadIds { get; } = [];

    /// <summary>When set, thrown by <see cref="Receive"/>.</summary>
    public Exception? ReceiveFailure { get; set; }

    /// <summary>When set, thrown by <see cref="ReceiveSnapshotAsync"/> after reading this many bytes.</summary>
    public (long AfterBytes, Exception Failure)? SnapshotFailure { get; set; }

    /// <summary>Called after each read of a snapshot stream with the bytes received so far.</summary>
    public Action<long>? OnSnapshotBytes { get; set; }

    public void Receive(Message message)
    {
        if (ReceiveFailure is { } failure)
        {
            throw failure;
        }

        lock (_lock)
        {
            Received.Add(message);
            _countWaits.RemoveAll(wait => wait.Count <= Received.Count && wait.Done.TrySetResult());
        }
    }

    public async ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken)
    {
        using var saved = new MemoryStream();
        var buffer = new byte[1000];
        while (true)
        {
            SnapshotThreadIds.Add(Environment.CurrentManagedThreadId);
            int read = await data.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                break;
            }

            saved.Write(buffer, 0, read);
            OnSnapshotBytes?.Invoke(saved.Length);
            if (SnapshotFailure is { } planned && saved.Length >= planned.AfterBytes)
            {
                throw planned.Failure;
            }
        }

        lock (_lock)
        {
            Snapshots.Add((snapshotMessage, saved.ToArray()));
        }
    }

    public void ReportUnreachable(ulong peerId)
    {
        lock (_lock)
        {
            Unreachable.Add(peerId);
        }
    }
}
