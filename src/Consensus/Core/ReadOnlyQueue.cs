using System.Buffers.Binary;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Core;

/// <summary>
/// The leader's pending read-index requests (Raft thesis §6.4) in quorum-safe mode. Each request
/// gets a fresh round id, unique for the life of the node, which the confirming heartbeats carry
/// as their context. The application's own context is never put on the wire as a round id, so a
/// retried or duplicated request is confirmed only by heartbeats sent after it was registered —
/// never by a stale round.
/// </summary>
internal sealed class ReadOnlyQueue
{
    private readonly Dictionary<ulong, PendingRead> _pending = [];
    private readonly Queue<ulong> _order = new();
    private ulong _newest;

    public int Count => _order.Count;

    public static byte[] EncodeRoundId(ulong id)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, id);
        return bytes;
    }

    public static bool TryDecodeRoundId(ReadOnlySpan<byte> context, out ulong id)
    {
        if (context.Length != 8)
        {
            id = 0;
            return false;
        }

        id = BinaryPrimitives.ReadUInt64LittleEndian(context);
        return true;
    }

    /// <summary>
    /// The context of a lease-mode heartbeat: the read round it confirms (0 for none) and the
    /// leader's tick when it was sent, echoed by the follower so that the leader can date the
    /// promise the acknowledgement proves (see <c>RaftCore.LeaseHolds</c>).
    /// </summary>
    public static byte[] EncodeHeartbeatContext(ulong roundId, ulong sentTick)
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, roundId);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), sentTick);
        return bytes;
    }

    /// <summary>
    /// Decodes a heartbeat context: a bare round id (quorum-safe mode) or a round id and send tick
    /// (lease mode). <paramref name="sentTick"/> is null when the context carries none.
    /// </summary>
    public static bool TryDecodeHeartbeatContext(ReadOnlySpan<byte> context, out ulong roundId, out ulong? sentTick)
    {
        sentTick = null;
        if (context.Length == 16)
        {
            roundId = BinaryPrimitives.ReadUInt64LittleEndian(context);
            sentTick = BinaryPrimitives.ReadUInt64LittleEndian(context[8..]);
            return true;
        }

        return TryDecodeRoundId(context, out roundId);
    }

    /// <summary>Registers <paramref name="request"/> as round <paramref name="roundId"/>, to be answered with <paramref name="index"/>.</summary>
    public void Add(ulong roundId, ulong index, Message request)
    {
        _pending.Add(roundId, new PendingRead(request, index));
        _order.Enqueue(roundId);
        _newest = roundId;
    }

    /// <summary>Records that <paramref name="from"/> confirmed round <paramref name="roundId"/>; returns the acks so far, or null if unknown.</summary>
    public IReadOnlyDictionary<ulong, bool>? RecordAck(ulong roundId, ulong from)
    {
        if (!_pending.TryGetValue(roundId, out var read))
        {
            return null;
        }

        read.Acks[from] = true;
        return read.Acks;
    }

    /// <summary>
    /// Round <paramref name="roundId"/> is confirmed by a quorum: it and every request registered
    /// before it are now safe to answer (their heartbeats were all sent before the acks came back).
    /// </summary>
    public List<PendingRead> Release(ulong roundId)
    {
        var released = new List<PendingRead>();
        if (!_pending.ContainsKey(roundId))
        {
            return released;
        }

        while (_order.TryDequeue(out var id))
        {
            released.Add(_pending[id]);
            _pending.Remove(id);
            if (id == roundId)
            {
                break;
            }
        }

        return released;
    }

    /// <summary>The round id of the newest pending request, to piggyback on regular heartbeats.</summary>
    public bool TryGetLastRoundId(out ulong id)
    {
        id = _order.Count == 0 ? 0 : _newest;
        return _order.Count > 0;
    }

    public void Clear()
    {
        _pending.Clear();
        _order.Clear();
    }

    internal sealed class PendingRead(Message request, ulong index)
    {
        public Message Request { get; } = request;

        public ulong Index { get; } = index;

        public Dictionary<ulong, bool> Acks { get; } = [];
    }
}
