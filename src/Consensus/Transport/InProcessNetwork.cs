using System.Runtime.InteropServices;
using EmbeddedRaft.Consensus.Messages;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// A network inside one process for clusters of Raft nodes in tests, samples and benchmarks: one
/// <see cref="IRaftTransport"/> per node id (<see cref="CreateTransport"/>), with faults switchable
/// at run time: partitions (<see cref="Partition"/>, <see cref="Isolate"/>, <see cref="Cut"/>,
/// <see cref="Heal"/>) and per-link drop, duplicate, delay and reorder (<see cref="SetLinkFaults"/>).
/// </summary>
/// <remarks>
/// <para>
/// Delivery: a message on a perfect link is handed to the receiver during
/// <see cref="IRaftTransport.Send"/>, on the sender's thread (the receiver only queues it for its
/// loop). A delayed or reordered message waits in the network and is delivered from a timer of
/// <see cref="InProcessNetworkOptions.TimeProvider"/>, messages due at the same time in the order
/// they were sent; consecutive ones for the same node are handed over in one
/// <see cref="IRaftMessageReceiver.ReceiveBatch"/> call. A message to a node that is not bound, or across a cut link, is dropped and the
/// sender is told the peer is unreachable; a message in flight when its link is cut or its
/// receiver unbinds is dropped on arrival. Snapshots are streamed through a pipe in pieces of
/// <see cref="InProcessNetworkOptions.SnapshotChunkSizeBytes"/>, the receiving side's continuations
/// queued to the sending caller's <see cref="TaskScheduler.Current"/>.
/// </para>
/// <para>
/// Determinism: every fault is drawn from one random source seeded by
/// <see cref="InProcessNetworkOptions.Seed"/>, in send order; no thread-pool work is started. With a
/// manual clock and the nodes' loops on one single-threaded <see cref="TaskScheduler"/>, the same
/// seed gives the same deliveries.
/// </para>
/// <para>Thread-safety: every member is thread-safe. Receivers are never called under the network's lock.</para>
/// </remarks>
public sealed class InProcessNetwork : IDisposable
{
    private readonly InProcessNetworkOptions _options;
    private readonly Lock _lock = new();
    private readonly Random _random;
    private readonly Dictionary<ulong, IRaftMessageReceiver> _receivers = [];
    private readonly Dictionary<(ulong From, ulong To), LinkFaults> _linkFaults = [];
    private readonly HashSet<(ulong From, ulong To)> _cutLinks = [];
    private readonly Dictionary<ulong, int> _partitionGroups = [];
    private readonly PriorityQueue<InFlightMessage, (long DueTicks, long Sequence)> _inFlight = new();
    private LinkFaults _defaultFaults;
    private ITimer? _timer;
    private long _timerDueTicks = long.MaxValue;
    private long _sequence;
    private bool _disposed;

    // Counters (guarded by _lock).
    private long _delivered;
    private long _dropped;
    private long _duplicated;
    private long _unreachableReports;
    private long _snapshotsDelivered;
    private long _snapshotsFailed;
    private long _snapshotChunks;
    private long _receiverFailures;

    /// <summary>Creates a network with <paramref name="options"/> (<see cref="InProcessNetworkOptions.Default"/> when null).</summary>
    public InProcessNetwork(InProcessNetworkOptions? options = null)
    {
        _options = options ?? InProcessNetworkOptions.Default;
        _random = new Random(_options.Seed);
        _defaultFaults = _options.DefaultLinkFaults;
    }

    /// <summary>Messages handed to a receiver (each copy of a duplicated message counts).</summary>
    public long DeliveredMessages { get { lock (_lock) { return _delivered; } } }

    /// <summary>Messages lost: by a drop fault, a cut link, or a receiver that was not bound.</summary>
    public long DroppedMessages { get { lock (_lock) { return _dropped; } } }

    /// <summary>Extra copies made by duplicate faults.</summary>
    public long DuplicatedMessages { get { lock (_lock) { return _duplicated; } } }

    /// <summary>Times a sender was told its peer was unreachable.</summary>
    public long UnreachableReports { get { lock (_lock) { return _unreachableReports; } } }

    /// <summary>Snapshot transfers the receiver completed.</summary>
    public long SnapshotsDelivered { get { lock (_lock) { return _snapshotsDelivered; } } }

    /// <summary>Snapshot transfers that failed (unreachable peer, lost link, receiver or sender error, cancellation).</summary>
    public long SnapshotsFailed { get { lock (_lock) { return _snapshotsFailed; } } }

    /// <summary>Pieces of snapshot data written into transfer pipes.</summary>
    public long SnapshotChunks { get { lock (_lock) { return _snapshotChunks; } } }

    /// <summary>
    /// Times a receiver threw from <see cref="IRaftMessageReceiver.Receive"/>,
    /// <see cref="IRaftMessageReceiver.ReceiveBatch"/> or <see cref="IRaftMessageReceiver.ReportUnreachable"/> (which must not throw): the network logs
    /// it and carries on, so a test should expect zero.
    /// </summary>
    public long ReceiverFailures { get { lock (_lock) { return _receiverFailures; } } }

    /// <summary>Messages waiting in the network for their delivery time.</summary>
    public int InFlightMessages { get { lock (_lock) { return _inFlight.Count; } } }

    internal InProcessNetworkOptions Options => _options;

    /// <summary>
    /// The transport for node <paramref name="nodeId"/>: what it sends leaves from that id, and it
    /// binds that id's receiver. A node restarted in the same process may take a new one.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nodeId"/> is 0 (not a Raft node id).</exception>
    /// <exception cref="ObjectDisposedException">The network is disposed.</exception>
    public IRaftTransport CreateTransport(ulong nodeId)
    {
        ArgumentOutOfRangeException.ThrowIfZero(nodeId);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        return new InProcessTransport(this, nodeId);
    }

    /// <summary>
    /// Sets the faults of the directed link from <paramref name="from"/> to <paramref name="to"/>,
    /// replacing what it had; takes effect for the next message sent.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="faults"/> is null.</exception>
    public void SetLinkFaults(ulong from, ulong to, LinkFaults faults)
    {
        ArgumentNullException.ThrowIfNull(faults);
        lock (_lock)
        {
            _linkFaults[(from, to)] = faults;
        }
    }

    /// <summary>Sets the faults of every link, dropping the faults set on single links.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="faults"/> is null.</exception>
    public void SetAllLinkFaults(LinkFaults faults)
    {
        ArgumentNullException.ThrowIfNull(faults);
        lock (_lock)
        {
            _linkFaults.Clear();
            _defaultFaults = faults;
        }
    }

    /// <summary>
    /// Splits the network: nodes in different <paramref name="groups"/> cannot reach each other, and
    /// nodes in no group form one more group of their own. Replaces an earlier partition (one-way
    /// cuts stay).
    /// </summary>
    /// <exception cref="ArgumentException">A node id is in more than one group.</exception>
    public void Partition(params IReadOnlyCollection<ulong>[] groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var assignment = new Dictionary<ulong, int>();
        for (int group = 0; group < groups.Length; group++)
        {
            foreach (ulong id in groups[group])
            {
                if (!assignment.TryAdd(id, group + 1))
                {
                    throw new ArgumentException($"Node {id} is in more than one partition group.", nameof(groups));
                }
            }
        }

        lock (_lock)
        {
            _partitionGroups.Clear();
            foreach (var (id, group) in assignment)
            {
                _partitionGroups[id] = group;
            }
        }
    }

    /// <summary>Cuts <paramref name="nodeId"/> off from every other node (a partition of one).</summary>
    public void Isolate(ulong nodeId) => Partition([nodeId]);

    /// <summary>Cuts the directed link from <paramref name="from"/> to <paramref name="to"/> (the other direction stays up).</summary>
    public void Cut(ulong from, ulong to)
    {
        lock (_lock)
        {
            _cutLinks.Add((from, to));
        }
    }

    /// <summary>
    /// Makes the network perfect again: no partition, no cut link, and every link back to
    /// <see cref="InProcessNetworkOptions.DefaultLinkFaults"/>. Messages already in flight keep their delivery time.
    /// </summary>
    public void Heal()
    {
        lock (_lock)
        {
            _partitionGroups.Clear();
            _cutLinks.Clear();
            _linkFaults.Clear();
            _defaultFaults = _options.DefaultLinkFaults;
        }
    }

    /// <summary>True when a message from <paramref name="from"/> to <paramref name="to"/> would cross no cut or partition.</summary>
    public bool IsLinkUp(ulong from, ulong to)
    {
        lock (_lock)
        {
            return IsLinkUpUnsynchronized(from, to);
        }
    }

    /// <summary>Stops the network: messages in flight are dropped, and later sends are dropped too.</summary>
    public void Dispose()
    {
        ITimer? timer;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _dropped += _inFlight.Count;
            _inFlight.Clear();
            timer = _timer;
            _timer = null;
        }

        timer?.Dispose();
    }

    internal IDisposable Bind(ulong nodeId, IRaftMessageReceiver receiver)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_receivers.TryAdd(nodeId, receiver))
            {
                throw new InvalidOperationException($"Node {nodeId} already has a receiver bound on this network; dispose that binding first.");
            }
        }

        return new Binding(this, nodeId, receiver);
    }

    internal void Send(ulong from, Message message)
    {
        // Decided under the lock (so the random draws follow send order); delivered after it.
        bool unreachable = false;
        IRaftMessageReceiver? immediate = null;
        bool immediateTwice = false;
        IRaftMessageReceiver? sender = null;
        lock (_lock)
        {
            if (_disposed)
            {
                _dropped++;
                return;
            }

            ulong to = message.To;
            if (!IsLinkUpUnsynchronized(from, to) || !_receivers.TryGetValue(to, out var receiver))
            {
                _dropped++;
                unreachable = _receivers.TryGetValue(from, out sender);
                if (unreachable)
                {
                    _unreachableReports++;
                }
            }
            else
            {
                var faults = FaultsUnsynchronized(from, to);
                if (faults.IsPerfect)
                {
                    _delivered++;
                    immediate = receiver;
                }
                else if (faults.DropRate > 0 && _random.NextDouble() < faults.DropRate)
                {
                    _dropped++;
                }
                else
                {
                    int copies = faults.DuplicateRate > 0 && _random.NextDouble() < faults.DuplicateRate ? 2 : 1;
                    _duplicated += copies - 1;
                    for (int copy = 0; copy < copies; copy++)
                    {
                        TimeSpan delay = faults.Delay;
                        if (faults.DelayJitter > TimeSpan.Zero)
                        {
                            delay += TimeSpan.FromTicks((long)(_random.NextDouble() * faults.DelayJitter.Ticks));
                        }

                        if (faults.ReorderRate > 0 && _random.NextDouble() < faults.ReorderRate)
                        {
                            delay += faults.ReorderDelay;
                        }

                        if (delay == TimeSpan.Zero)
                        {
                            _delivered++;
                            immediateTwice = immediate is not null;
                            immediate = receiver;
                        }
                        else
                        {
                            EnqueueUnsynchronized(from, message, delay);
                        }
                    }
                }
            }
        }

        if (unreachable)
        {
            Call(sender!, static (r, m) => r.ReportUnreachable(m.To), message);
        }

        if (immediate is not null)
        {
            Call(immediate, static (r, m) => r.Receive(m), message);
            if (immediateTwice)
            {
                Call(immediate, static (r, m) => r.Receive(m), message);
            }
        }
    }

    internal async ValueTask SendSnapshotAsync(ulong from, Message message, Stream data, CancellationToken cancellationToken)
    {
        var receiver = ReceiverForSnapshot(from, message.To);
        try
        {
            await new SnapshotTransfer(this, from, message, receiver).RunAsync(data, cancellationToken);
        }
        catch (Exception failure)
        {
            lock (_lock)
            {
                _snapshotsFailed++;
            }

            _options.Logger.LogWarning(failure, "Snapshot {Index} from {From} to {To} failed.", message.Snapshot!.Index, from, message.To);
            throw;
        }

        lock (_lock)
        {
            _snapshotsDelivered++;
        }
    }

    /// <summary>Checks between two pieces of a snapshot that the link and the receiver are still there.</summary>
    internal void EnsureStillReachable(ulong from, ulong to, IRaftMessageReceiver receiver)
    {
        lock (_lock)
        {
            if (_disposed || !IsLinkUpUnsynchronized(from, to) || !_receivers.TryGetValue(to, out var bound) || !ReferenceEquals(bound, receiver))
            {
                throw new PeerUnreachableException(to, "the link was cut or the peer stopped during a snapshot transfer.");
            }

            _snapshotChunks++;
        }
    }

    private IRaftMessageReceiver ReceiverForSnapshot(ulong from, ulong to)
    {
        IRaftMessageReceiver? sender;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (IsLinkUpUnsynchronized(from, to) && _receivers.TryGetValue(to, out var receiver))
            {
                return receiver;
            }

            _snapshotsFailed++;
            if (_receivers.TryGetValue(from, out sender))
            {
                _unreachableReports++;
            }
        }

        if (sender is not null)
        {
            Call(sender, static (r, id) => r.ReportUnreachable(id), to);
        }

        throw new PeerUnreachableException(to, "the link is cut or the peer is not running.");
    }

    private void Unbind(ulong nodeId, IRaftMessageReceiver receiver)
    {
        lock (_lock)
        {
            if (_receivers.TryGetValue(nodeId, out var bound) && ReferenceEquals(bound, receiver))
            {
                _receivers.Remove(nodeId);
            }
        }
    }

    private bool IsLinkUpUnsynchronized(ulong from, ulong to)
    {
        if (_cutLinks.Contains((from, to)))
        {
            return false;
        }

        int fromGroup = _partitionGroups.GetValueOrDefault(from);
        int toGroup = _partitionGroups.GetValueOrDefault(to);
        return fromGroup == toGroup;
    }

    private LinkFaults FaultsUnsynchronized(ulong from, ulong to) =>
        _linkFaults.TryGetValue((from, to), out var faults) ? faults : _defaultFaults;

    private void EnqueueUnsynchronized(ulong from, Message message, TimeSpan delay)
    {
        long due = _options.TimeProvider.GetUtcNow().UtcTicks + delay.Ticks;
        _inFlight.Enqueue(new InFlightMessage(from, message), (due, _sequence++));
        ArmTimerUnsynchronized();
    }

    // Invariant: when messages are in flight, the timer is due no later than the earliest of them.
    private void ArmTimerUnsynchronized()
    {
        if (!_inFlight.TryPeek(out _, out var earliest))
        {
            return;
        }

        if (earliest.DueTicks >= _timerDueTicks)
        {
            return;
        }

        _timer ??= _options.TimeProvider.CreateTimer(static state => ((InProcessNetwork)state!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        long now = _options.TimeProvider.GetUtcNow().UtcTicks;
        _timerDueTicks = earliest.DueTicks;
        _timer.Change(TimeSpan.FromTicks(Math.Max(0, earliest.DueTicks - now)), Timeout.InfiniteTimeSpan);
    }

    private void OnTimer()
    {
        var messages = new List<Message>();
        var receivers = new List<IRaftMessageReceiver>();
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            long now = _options.TimeProvider.GetUtcNow().UtcTicks;
            while (_inFlight.TryPeek(out var next, out var at) && at.DueTicks <= now)
            {
                _inFlight.Dequeue();
                if (IsLinkUpUnsynchronized(next.From, next.Message.To) && _receivers.TryGetValue(next.Message.To, out var receiver))
                {
                    _delivered++;
                    messages.Add(next.Message);
                    receivers.Add(receiver);
                }
                else
                {
                    _dropped++;
                }
            }

            _timerDueTicks = long.MaxValue;
            ArmTimerUnsynchronized();
        }

        // In due order; a run of messages for the same receiver is one batch (one inbox item for
        // a RaftNode), so the calls and their order are those of one-by-one delivery, grouped.
        var due = CollectionsMarshal.AsSpan(messages);
        int start = 0;
        while (start < due.Length)
        {
            var receiver = receivers[start];
            int end = start + 1;
            while (end < due.Length && ReferenceEquals(receivers[end], receiver))
            {
                end++;
            }

            CallBatch(receiver, due[start..end]);
            start = end;
        }
    }

    private void CallBatch(IRaftMessageReceiver receiver, ReadOnlySpan<Message> batch)
    {
        try
        {
            receiver.ReceiveBatch(batch);
        }
#pragma warning disable CA1031 // A receiver that throws must not break the timer: counted and logged.
        catch (Exception failure)
#pragma warning restore CA1031
        {
            lock (_lock)
            {
                _receiverFailures++;
            }

            _options.Logger.LogError(failure, "A receiver threw while taking a batch of {Count} messages, the first {First}, from the in-process network.", batch.Length, batch[0]);
        }
    }

    private void Call<T>(IRaftMessageReceiver receiver, Action<IRaftMessageReceiver, T> call, T argument)
    {
        try
        {
            call(receiver, argument);
        }
#pragma warning disable CA1031 // A receiver that throws must not break the sender's loop or the timer: counted and logged.
        catch (Exception failure)
#pragma warning restore CA1031
        {
            lock (_lock)
            {
                _receiverFailures++;
            }

            _options.Logger.LogError(failure, "A receiver threw while taking {Argument} from the in-process network.", argument);
        }
    }

    private readonly record struct InFlightMessage(ulong From, Message Message);

    private sealed class Binding(InProcessNetwork network, ulong nodeId, IRaftMessageReceiver receiver) : IDisposable
    {
        public void Dispose() => network.Unbind(nodeId, receiver);
    }
}
