using System.Globalization;
using System.Text;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>
/// A pass-through <see cref="IRaftTransport"/> that counts the shape of what a node really sends
/// and is handed: messages by type, entries and encoded bytes per Append, and on the receiving
/// side how many messages each hand-off to the node carried (<see cref="IRaftMessageReceiver.ReceiveBatch"/>
/// or <see cref="IRaftMessageReceiver.Receive"/>). <c>cluster-load --shape</c> wraps each node's
/// transport in one, so the transport benchmark's rows can be compared with the traffic RaftNode
/// produces. A diagnostic of the benchmark, not of the library: it adds a few interlocked
/// increments per message, so rows measured with it are not A/B figures.
/// </summary>
internal sealed class MessageShapeTransport(IRaftTransport inner) : IRaftTransport
{
    private readonly long[] _byType = new long[32];
    private long _appends;
    private long _appendEntries;
    private long _appendBytes;
    private long _appendsWithoutEntries;
    private long _maxEntriesPerAppend;
    private long _handOffs;
    private long _handedMessages;

    /// <summary>Sums the counts of several transports (the cluster's three).</summary>
    public static string Describe(IEnumerable<MessageShapeTransport> transports)
    {
        var all = transports.ToList();
        long appends = all.Sum(t => Interlocked.Read(ref t._appends));
        long empty = all.Sum(t => Interlocked.Read(ref t._appendsWithoutEntries));
        long entries = all.Sum(t => Interlocked.Read(ref t._appendEntries));
        long bytes = all.Sum(t => Interlocked.Read(ref t._appendBytes));
        long maxEntries = all.Max(t => Interlocked.Read(ref t._maxEntriesPerAppend));
        long handOffs = all.Sum(t => Interlocked.Read(ref t._handOffs));
        long handed = all.Sum(t => Interlocked.Read(ref t._handedMessages));
        long sent = 0;
        var types = new StringBuilder();
        for (int type = 0; type < 32; type++)
        {
            long count = all.Sum(t => Interlocked.Read(ref t._byType[type]));
            if (count > 0)
            {
                sent += count;
                types.Append(CultureInfo.InvariantCulture, $"{(types.Length > 0 ? ", " : string.Empty)}{(MessageType)type} {count}");
            }
        }

        long withEntries = appends - empty;
        return string.Create(
            CultureInfo.InvariantCulture,
            $"shape: {sent} messages sent ({types}); appends carrying entries: {withEntries}, {(withEntries > 0 ? (double)entries / withEntries : 0):F1} entries and {(withEntries > 0 ? (double)bytes / withEntries : 0):F0} encoded bytes each (at most {maxEntries} entries), {empty} without entries; handed to the nodes: {handed} messages in {handOffs} hand-offs ({(handOffs > 0 ? (double)handed / handOffs : 0):F2} per hand-off)");
    }

    public IDisposable Bind(ulong localId, IRaftMessageReceiver receiver) => inner.Bind(localId, new CountingReceiver(this, receiver));

    public void Send(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        Interlocked.Increment(ref _byType[(int)message.Type & 31]);
        if (message.Type == MessageType.Append)
        {
            Interlocked.Increment(ref _appends);
            int entries = message.Entries.Length;
            if (entries == 0)
            {
                Interlocked.Increment(ref _appendsWithoutEntries);
            }
            else
            {
                Interlocked.Add(ref _appendEntries, entries);
                Interlocked.Add(ref _appendBytes, MessageCodec.GetEncodedLength(message));
                long max;
                while (entries > (max = Interlocked.Read(ref _maxEntriesPerAppend)) && Interlocked.CompareExchange(ref _maxEntriesPerAppend, entries, max) != max)
                {
                }
            }
        }

        inner.Send(message);
    }

    public ValueTask SendSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
        inner.SendSnapshotAsync(snapshotMessage, data, cancellationToken);

    private void HandedOff(int messages)
    {
        Interlocked.Increment(ref _handOffs);
        Interlocked.Add(ref _handedMessages, messages);
    }

    /// <summary>Counts each hand-off, then passes it on unchanged (a batch stays a batch).</summary>
    private sealed class CountingReceiver(MessageShapeTransport owner, IRaftMessageReceiver inner) : IRaftMessageReceiver
    {
        public void Receive(Message message)
        {
            owner.HandedOff(1);
            inner.Receive(message);
        }

        public void ReceiveBatch(ReadOnlySpan<Message> messages)
        {
            owner.HandedOff(messages.Length);
            inner.ReceiveBatch(messages);
        }

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) =>
            inner.ReceiveSnapshotAsync(snapshotMessage, data, cancellationToken);

        public void ReportUnreachable(ulong peerId) => inner.ReportUnreachable(peerId);
    }
}
