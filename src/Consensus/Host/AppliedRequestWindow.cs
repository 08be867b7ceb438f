using System.Buffers.Binary;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Host;

/// <summary>
/// Which (origin, request id) pairs were applied recently: the deduplication that makes every
/// command apply exactly once although the network may deliver a forwarded proposal twice (and
/// the leader then appends it twice). Each replica updates it in apply order, from the log alone,
/// so all replicas drop the same copies. Bounded: the newest <c>window</c> ids of each origin.
/// </summary>
/// <remarks>
/// <para>It is part of every snapshot (the host header written before the state machine's data,
/// <see cref="WriteHeader"/>), and on restart it is rebuilt from that header plus the retained log
/// up to the state machine's applied index, so it is the same on every replica at every index.</para>
/// <para>Header layout (little-endian): u32 magic, u32 origin count; per origin: u64 id, u32 count,
/// then count u64 request ids, oldest first. The magic says what follows the header:
/// <see cref="HeaderMagic"/> (<c>0x45524831</c>, "ERH1") the state machine's data;
/// <see cref="MetadataOnlyMagic"/> (<c>0x4552484D</c>, "ERHM") nothing — the snapshot of a
/// state machine that is durable by itself (<see cref="IDurableStateMachine{TResult}"/>), whose own
/// files hold its state at or past the snapshot's index. Pinned in docs/formats.md.</para>
/// <para>Not thread-safe: owned by the apply pipeline (and by the start-up code before it runs).</para>
/// </remarks>
internal sealed class AppliedRequestWindow
{
    /// <summary>The header of a snapshot whose state machine data follows it.</summary>
    public const uint HeaderMagic = 0x45524831;

    /// <summary>The header of a metadata-only snapshot: no state machine data follows.</summary>
    public const uint MetadataOnlyMagic = 0x4552484D;
    private const int MaxOrigins = 1 << 16;

    private readonly int _window;
    private readonly Dictionary<ulong, OriginWindow> _origins = [];

    public AppliedRequestWindow(int window)
    {
        _window = window;
    }

    /// <summary>Records an applied request; false when it was already applied (a duplicate to drop).</summary>
    public bool TryRecord(ulong origin, ulong requestId)
    {
        if (!_origins.TryGetValue(origin, out var w))
        {
            w = new OriginWindow();
            _origins.Add(origin, w);
        }

        if (!w.Ids.Add(requestId))
        {
            return false;
        }

        w.Order.Enqueue(requestId);
        if (w.Order.Count > _window)
        {
            w.Ids.Remove(w.Order.Dequeue());
        }

        return true;
    }

    /// <summary>The largest request id recorded for <paramref name="origin"/>, or 0.</summary>
    public ulong MaxRequestId(ulong origin) =>
        _origins.TryGetValue(origin, out var w) && w.Ids.Count > 0 ? w.Ids.Max() : 0;

    public void Clear() => _origins.Clear();

    /// <summary>
    /// The header bytes (small: at most window × origins × 8 bytes); with <paramref name="metadataOnly"/>
    /// the header of a snapshot that carries no state machine data.
    /// </summary>
    public byte[] WriteHeader(bool metadataOnly = false)
    {
        var size = 8 + _origins.Values.Sum(w => 12 + (8 * w.Order.Count));
        var bytes = new byte[size];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, metadataOnly ? MetadataOnlyMagic : HeaderMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)_origins.Count);
        var at = 8;
        foreach (var (origin, w) in _origins.OrderBy(p => p.Key))
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[at..], origin);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 8)..], (uint)w.Order.Count);
            at += 12;
            foreach (var id in w.Order)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(span[at..], id);
                at += 8;
            }
        }

        if (at != size)
        {
            throw new InvariantViolationException($"Deduplication header written {at} bytes of {size}.");
        }

        return bytes;
    }

    /// <summary>
    /// Replaces the contents with the header read from the start of <paramref name="data"/>, leaving
    /// the stream positioned at the state machine's data. Returns whether state machine data follows
    /// (false: a metadata-only snapshot, see <see cref="MetadataOnlyMagic"/>).
    /// </summary>
    /// <exception cref="CorruptionException">The header is not one this host wrote.</exception>
    public async ValueTask<bool> ReadHeaderAsync(Stream data, string source, CancellationToken cancellationToken)
    {
        _origins.Clear();
        var fixedPart = new byte[12];
        await data.ReadExactlyAsync(fixedPart.AsMemory(0, 8), cancellationToken);
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart);
        var originCount = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart.AsSpan(4));
        if (magic is not (HeaderMagic or MetadataOnlyMagic) || originCount > MaxOrigins)
        {
            throw new CorruptionException(source, 0, $"the snapshot does not start with a RaftNode header (magic 0x{magic:X8}, {originCount} origins)");
        }

        var idBytes = new byte[8];
        for (var i = 0; i < originCount; i++)
        {
            await data.ReadExactlyAsync(fixedPart, cancellationToken);
            var origin = BinaryPrimitives.ReadUInt64LittleEndian(fixedPart);
            var count = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart.AsSpan(8));
            if (count > int.MaxValue / 8)
            {
                throw new CorruptionException(source, 0, $"the RaftNode header claims {count} request ids for node {origin}");
            }

            for (var j = 0; j < count; j++)
            {
                await data.ReadExactlyAsync(idBytes, cancellationToken);
                TryRecord(origin, BinaryPrimitives.ReadUInt64LittleEndian(idBytes));
            }
        }

        return magic == HeaderMagic;
    }

    private sealed class OriginWindow
    {
        public HashSet<ulong> Ids { get; } = [];

        public Queue<ulong> Order { get; } = new();
    }
}
