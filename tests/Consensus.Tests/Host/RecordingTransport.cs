using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>Forwards to a node's transport and remembers every message the node sent; a test waits for messages by predicate.</summary>
internal sealed class RecordingTransport(IRaftTransport inner) : IRaftTransport
{
    private readonly Lock _lock = new();
    private readonly List<Message> _sent = [];
    private readonly List<Waiter> _waiters = [];

    public IReadOnlyList<Message> Sent
    {
        get
        {
            lock (_lock)
            {
                return [.. _sent];
            }
        }
    }

    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) => inner.Bind(localId, receiver);

    public void Send(Message message)
    {
        List<TaskCompletionSource> due = [];
        lock (_lock)
        {
            _sent.Add(message);
            foreach (var waiter in _waiters)
            {
                if (waiter.Match(message) && --waiter.Remaining == 0)
                {
                    due.Add(waiter.Signal);
                }
            }

            _waiters.RemoveAll(w => w.Remaining == 0);
        }

        due.ForEach(s => s.TrySetResult());
        inner.Send(message);
    }

    public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
        inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);

    /// <summary>Completes once the node has sent a message matching <paramref name="match"/> (now or earlier); bounded by <see cref="Waits.Limit"/>.</summary>
    public Task WaitForAsync(Func<Message, bool> match) => WaitForCountAsync(match, count: 1, countSentBefore: true);

    /// <summary>
    /// Completes once the node has sent <paramref name="count"/> messages matching <paramref name="match"/>
    /// (counting those sent before this call only when <paramref name="countSentBefore"/>); bounded by <see cref="Waits.Limit"/>.
    /// </summary>
    public Task WaitForCountAsync(Func<Message, bool> match, int count, bool countSentBefore)
    {
        lock (_lock)
        {
            var remaining = count - (countSentBefore ? _sent.Count(match) : 0);
            if (remaining <= 0)
            {
                return Task.CompletedTask;
            }

            var waiter = new Waiter(match, remaining);
            _waiters.Add(waiter);
            return waiter.Signal.Task.WaitAsync(Waits.Limit);
        }
    }

    private sealed class Waiter(Func<Message, bool> match, int remaining)
    {
        public Func<Message, bool> Match { get; } = match;

        public int Remaining { get; set; } = remaining;

        public TaskCompletionSource Signal { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
