using System.Buffers;
using EmbeddedRaft.Consensus.Membership;

namespace EmbeddedRaft.Consensus.Messages;

/// <summary>
/// The compact, versioned binary encoding of messages, entries, hard state and snapshot
/// metadata: a version byte, then fields as unsigned LEB128 varints and length-prefixed bytes.
/// Used by the write-ahead log records and by network transports.
/// </summary>
/// <remarks>
/// Decoding treats its input as untrusted: it throws only <see cref="MessageFormatException"/>,
/// and every count or length is checked against the bytes remaining before anything is
/// allocated, so the memory allocated is bounded by a small multiple of the input length.
/// Decoded data copies the input once; the result never aliases the caller's buffer.
/// Thread-safe (stateless).
/// </remarks>
public static class MessageCodec
{
    /// <summary>
    /// The format version written by this build. Version 2 added the removed ids to snapshot
    /// metadata and the configuration-change record. Version 3 took the application's snapshot data
    /// out of snapshot messages (it travels out of band, as a stream; see <see cref="SnapshotMetadata"/>).
    /// Versions 1 and 2 are still read, except a snapshot message that carries data inline, which is
    /// refused: its receiver would have nowhere to put the data.
    /// </summary>
    public const byte Version = 3;

    /// <summary>The oldest format version this build reads.</summary>
    public const byte MinReadableVersion = 1;

    // The smallest possible encoded configuration change item: type and node id, a byte each.
    private const int MinConfChangeItemSizeBytes = 2;

    private const byte FlagReject = 1;
    private const byte FlagSnapshot = 2;
    private const byte KnownFlags = FlagReject | FlagSnapshot;

    // The smallest possible encoded entry: type, term, index, data length, each one byte.
    private const int MinEntrySizeBytes = 4;

    /// <summary>The exact number of bytes <see cref="Encode(Message, Span{byte})"/> writes for <paramref name="message"/>.</summary>
    public static int GetEncodedLength(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var size = 3
            + Entry.VarintSize(message.To) + Entry.VarintSize(message.From) + Entry.VarintSize(message.Term)
            + Entry.VarintSize(message.LogTerm) + Entry.VarintSize(message.Index) + Entry.VarintSize(message.Commit)
            + Entry.VarintSize(message.RejectHint)
            + Entry.VarintSize((ulong)message.Context.Length) + message.Context.Length
            + Entry.VarintSize((ulong)message.Entries.Length);
        foreach (ref readonly var entry in message.Entries.Span)
        {
            size += entry.EncodedSizeBytes;
        }

        if (message.Snapshot is { } snapshot)
        {
            size += MetadataSize(snapshot);
        }

        return size;
    }

    /// <summary>Encodes <paramref name="message"/> into a new array.</summary>
    public static byte[] Encode(Message message)
    {
        var buffer = new byte[GetEncodedLength(message)];
        Encode(message, buffer);
        return buffer;
    }

    /// <summary>Encodes <paramref name="message"/> into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <see cref="GetEncodedLength"/>.</exception>
    public static int Encode(Message message, Span<byte> destination)
    {
        var length = GetEncodedLength(message);
        if (destination.Length < length)
        {
            throw new ArgumentException($"Destination holds {destination.Length} bytes; the message needs {length}.", nameof(destination));
        }

        return EncodeUnchecked(message, destination);
    }

    /// <summary>
    /// <see cref="Encode(Message, Span{byte})"/> for a caller that already called
    /// <see cref="GetEncodedLength"/> and sized <paramref name="destination"/> by it (a span too short
    /// still throws, from the span's bounds check): the transport's batch writer, which needs each
    /// length first for its prefix and must not compute it twice per message.
    /// </summary>
    internal static int EncodeUnchecked(Message message, Span<byte> destination)
    {
        var writer = new SpanWriter(destination);
        writer.WriteByte(Version);
        writer.WriteByte((byte)message.Type);
        writer.WriteByte((byte)((message.Reject ? FlagReject : 0) | (message.Snapshot is null ? 0 : FlagSnapshot)));
        writer.WriteVarint(message.To);
        writer.WriteVarint(message.From);
        writer.WriteVarint(message.Term);
        writer.WriteVarint(message.LogTerm);
        writer.WriteVarint(message.Index);
        writer.WriteVarint(message.Commit);
        writer.WriteVarint(message.RejectHint);
        writer.WriteBytes(message.Context.Span);
        writer.WriteVarint((ulong)message.Entries.Length);
        foreach (ref readonly var entry in message.Entries.Span)
        {
            WriteEntry(ref writer, entry);
        }

        if (message.Snapshot is { } snapshot)
        {
            WriteMetadata(ref writer, snapshot);
        }

        return writer.Position;
    }

    /// <summary>Encodes <paramref name="message"/> into <paramref name="writer"/>.</summary>
    public static void Encode(Message message, IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var length = GetEncodedLength(message);
        var written = Encode(message, writer.GetSpan(length));
        writer.Advance(written);
    }

    /// <summary>Decodes a message encoded by <see cref="Encode(Message, Span{byte})"/>.</summary>
    /// <exception cref="MessageFormatException">The bytes are not exactly one valid message.</exception>
    public static Message DecodeMessage(ReadOnlySpan<byte> source)
    {
        var reader = new SpanReader(source);
        return ReadMessage(ref reader, frame: null);
    }

    /// <summary>
    /// Decodes the message at <paramref name="offset"/> (<paramref name="length"/> bytes) of
    /// <paramref name="frame"/>, a transport frame holding many messages. Unlike
    /// <see cref="DecodeMessage(ReadOnlySpan{byte})"/>, the byte fields of all the frame's messages
    /// share one copy of the frame, made by <paramref name="context"/> on the first message that has
    /// any, and their entries share blocks of one entry array: one copy and a few allocations per
    /// frame instead of per message. The result still never aliases <paramref name="frame"/> itself
    /// (which may be a reused pipe buffer): holding a message past the next frame is safe.
    /// </summary>
    /// <remarks>Lifetime: a held message keeps its whole frame's copy alive (frames are bounded by the transport's frame size).</remarks>
    /// <exception cref="MessageFormatException">The bytes are not exactly one valid message.</exception>
    internal static Message DecodeMessage(ReadOnlySpan<byte> frame, int offset, int length, FrameDecodeContext context)
    {
        var reader = new SpanReader(frame, offset, length, context);
        return ReadMessage(ref reader, context);
    }

    private static Message ReadMessage(ref SpanReader reader, FrameDecodeContext? frame)
    {
        var version = reader.ReadVersion();
        var typeByte = reader.ReadByte();
        if (typeByte > (byte)MessageTypes.MaxValue)
        {
            throw reader.Fail($"unknown message type {typeByte}");
        }

        var flags = reader.ReadByte();
        if ((flags & ~KnownFlags) != 0)
        {
            throw reader.Fail($"unknown flags 0x{flags:x2}");
        }

        var to = reader.ReadVarint();
        var from = reader.ReadVarint();
        var term = reader.ReadVarint();
        var logTerm = reader.ReadVarint();
        var index = reader.ReadVarint();
        var commit = reader.ReadVarint();
        var rejectHint = reader.ReadVarint();
        var context = reader.ReadBytes();
        var count = reader.ReadCount(MinEntrySizeBytes);
        Memory<Entry> entries = count == 0 ? Memory<Entry>.Empty : frame is null ? new Entry[count] : frame.TakeEntries(count);
        var entrySpan = entries.Span;
        for (var i = 0; i < entrySpan.Length; i++)
        {
            entrySpan[i] = ReadEntry(ref reader);
        }

        SnapshotMetadata? snapshot = null;
        if ((flags & FlagSnapshot) != 0)
        {
            snapshot = ReadMetadata(ref reader, version);
            if (version < 3 && reader.ReadBytes().Length != 0)
            {
                throw reader.Fail($"a version {version} snapshot message carries its data inline; version 3 moves snapshot data out of band");
            }
        }

        reader.EnsureEnd();
        return new Message
        {
            Type = (MessageType)typeByte,
            To = to,
            From = from,
            Term = term,
            LogTerm = logTerm,
            Index = index,
            Commit = commit,
            RejectHint = rejectHint,
            Reject = (flags & FlagReject) != 0,
            Context = context,
            Entries = entries,
            Snapshot = snapshot,
        };
    }

    /// <summary>Encodes one entry (with a version byte) into a new array.</summary>
    public static byte[] EncodeEntry(in Entry entry)
    {
        var buffer = new byte[1 + entry.EncodedSizeBytes];
        var writer = new SpanWriter(buffer);
        writer.WriteByte(Version);
        WriteEntry(ref writer, entry);
        return buffer;
    }

    /// <summary>Encodes one entry as <see cref="EncodeEntry"/> does into <paramref name="destination"/>, which must hold <c>1 + entry.EncodedSizeBytes</c> bytes; returns that length.</summary>
    internal static int EncodeEntryInto(in Entry entry, Span<byte> destination)
    {
        var writer = new SpanWriter(destination);
        writer.WriteByte(Version);
        WriteEntry(ref writer, entry);
        return writer.Position;
    }

    /// <summary>Decodes an entry encoded by <see cref="EncodeEntry"/>.</summary>
    /// <exception cref="MessageFormatException">The bytes are not exactly one valid entry.</exception>
    public static Entry DecodeEntry(ReadOnlySpan<byte> source)
    {
        var reader = new SpanReader(source);
        reader.ReadVersion();
        var entry = ReadEntry(ref reader);
        reader.EnsureEnd();
        return entry;
    }

    /// <summary>
    /// Reads the header of an entry encoded by <see cref="EncodeEntry"/> (type, term, index) and
    /// checks that its data field spans exactly the rest of <paramref name="source"/>, without
    /// copying the data: what the durable log needs of every entry when it replays its write-ahead
    /// log, where decoding each entry whole would copy every byte of the log once more.
    /// </summary>
    /// <exception cref="MessageFormatException">The header is malformed or the data length does not match the bytes that follow.</exception>
    internal static (EntryType Type, ulong Term, ulong Index) PeekEntry(ReadOnlySpan<byte> source)
    {
        var reader = new SpanReader(source);
        reader.ReadVersion();
        var type = reader.ReadByte();
        if (type > (byte)EntryType.ConfChange)
        {
            throw reader.Fail($"unknown entry type {type}");
        }

        var term = reader.ReadVarint();
        var index = reader.ReadVarint();
        reader.SkipBytesToEnd();
        return ((EntryType)type, term, index);
    }

    /// <summary>Encodes a hard state (with a version byte) into a new array.</summary>
    public static byte[] EncodeHardState(HardState state)
    {
        var buffer = new byte[1 + Entry.VarintSize(state.Term) + Entry.VarintSize(state.Vote) + Entry.VarintSize(state.Commit)];
        var writer = new SpanWriter(buffer);
        writer.WriteByte(Version);
        writer.WriteVarint(state.Term);
        writer.WriteVarint(state.Vote);
        writer.WriteVarint(state.Commit);
        return buffer;
    }

    /// <summary>Decodes a hard state encoded by <see cref="EncodeHardState"/>.</summary>
    /// <exception cref="MessageFormatException">The bytes are not exactly one valid hard state.</exception>
    public static HardState DecodeHardState(ReadOnlySpan<byte> source)
    {
        var reader = new SpanReader(source);
        reader.ReadVersion();
        var state = new HardState(reader.ReadVarint(), reader.ReadVarint(), reader.ReadVarint());
        reader.EnsureEnd();
        return state;
    }

    /// <summary>Encodes snapshot metadata (with a version byte) into a new array.</summary>
    public static byte[] EncodeSnapshotMetadata(SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var buffer = new byte[1 + MetadataSize(metadata)];
        var writer = new SpanWriter(buffer);
        writer.WriteByte(Version);
        WriteMetadata(ref writer, metadata);
        return buffer;
    }

    /// <summary>Decodes snapshot metadata encoded by <see cref="EncodeSnapshotMetadata"/>.</summary>
    /// <exception cref="MessageFormatException">The bytes are not exactly one valid metadata record.</exception>
    public static SnapshotMetadata DecodeSnapshotMetadata(ReadOnlySpan<byte> source)
    {
        var reader = new SpanReader(source);
        var version = reader.ReadVersion();
        var metadata = ReadMetadata(ref reader, version);
        reader.EnsureEnd();
        return metadata;
    }

    /// <summary>
    /// Encodes a configuration change (with a version byte) into a new array: the data of a
    /// <see cref="EntryType.ConfChange"/> entry. Layout: version, transition, count, then
    /// (type, node id) per change.
    /// </summary>
    public static byte[] EncodeConfChange(ConfChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        var size = 2 + Entry.VarintSize((ulong)change.Changes.Count);
        foreach (var item in change.Changes)
        {
            size += 1 + Entry.VarintSize(item.NodeId);
        }

        var buffer = new byte[size];
        var writer = new SpanWriter(buffer);
        writer.WriteByte(Version);
        writer.WriteByte((byte)change.Transition);
        writer.WriteVarint((ulong)change.Changes.Count);
        foreach (var item in change.Changes)
        {
            writer.WriteByte((byte)item.Type);
            writer.WriteVarint(item.NodeId);
        }

        return buffer;
    }

    /// <summary>Decodes a configuration change encoded by <see cref="EncodeConfChange"/> (the data of a configuration-change entry).</summary>
    /// <exception cref="MessageFormatException">The bytes are not exactly one valid configuration change.</exception>
    public static ConfChange DecodeConfChange(ReadOnlySpan<byte> source)
    {
        var reader = new SpanReader(source);
        var version = reader.ReadVersion();
        if (version < 2)
        {
            throw reader.Fail($"configuration changes exist from version 2 on, not {version}");
        }

        var transition = reader.ReadByte();
        if (!Enum.IsDefined((ConfChangeTransition)transition))
        {
            throw reader.Fail($"unknown configuration change transition {transition}");
        }

        var count = reader.ReadCount(MinConfChangeItemSizeBytes);
        var items = new ConfChangeItem[count];
        for (var i = 0; i < items.Length; i++)
        {
            var type = reader.ReadByte();
            if (!Enum.IsDefined((ConfChangeType)type))
            {
                throw reader.Fail($"unknown configuration change type {type}");
            }

            items[i] = new ConfChangeItem((ConfChangeType)type, reader.ReadVarint());
        }

        reader.EnsureEnd();
        return new ConfChange(items, (ConfChangeTransition)transition);
    }

    private static void WriteEntry(ref SpanWriter writer, in Entry entry)
    {
        writer.WriteByte((byte)entry.Type);
        writer.WriteVarint(entry.Term);
        writer.WriteVarint(entry.Index);
        writer.WriteBytes(entry.Data.Span);
    }

    private static Entry ReadEntry(ref SpanReader reader)
    {
        var type = reader.ReadByte();
        if (type > (byte)EntryType.ConfChange)
        {
            throw reader.Fail($"unknown entry type {type}");
        }

        var term = reader.ReadVarint();
        var index = reader.ReadVarint();
        return new Entry(term, index, (EntryType)type, reader.ReadBytes());
    }

    private static int MetadataSize(SnapshotMetadata metadata)
    {
        var conf = metadata.ConfState;
        return Entry.VarintSize(metadata.Index) + Entry.VarintSize(metadata.Term)
            + IdsSize(conf.Voters) + IdsSize(conf.VotersOutgoing) + IdsSize(conf.Learners) + IdsSize(conf.LearnersNext) + 1
            + IdsSize(conf.Removed);
    }

    private static int IdsSize(IReadOnlyList<ulong> ids)
    {
        var size = Entry.VarintSize((ulong)ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            size += Entry.VarintSize(ids[i]);
        }

        return size;
    }

    private static void WriteMetadata(ref SpanWriter writer, SnapshotMetadata metadata)
    {
        writer.WriteVarint(metadata.Index);
        writer.WriteVarint(metadata.Term);
        var conf = metadata.ConfState;
        WriteIds(ref writer, conf.Voters);
        WriteIds(ref writer, conf.VotersOutgoing);
        WriteIds(ref writer, conf.Learners);
        WriteIds(ref writer, conf.LearnersNext);
        writer.WriteByte(conf.AutoLeave ? (byte)1 : (byte)0);
        WriteIds(ref writer, conf.Removed);
    }

    private static void WriteIds(ref SpanWriter writer, IReadOnlyList<ulong> ids)
    {
        writer.WriteVarint((ulong)ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            writer.WriteVarint(ids[i]);
        }
    }

    private static SnapshotMetadata ReadMetadata(ref SpanReader reader, byte version)
    {
        var index = reader.ReadVarint();
        var term = reader.ReadVarint();
        var voters = ReadIds(ref reader);
        var outgoing = ReadIds(ref reader);
        var learners = ReadIds(ref reader);
        var learnersNext = ReadIds(ref reader);
        var autoLeave = reader.ReadByte();
        if (autoLeave > 1)
        {
            throw reader.Fail($"auto-leave flag {autoLeave} is not 0 or 1");
        }

        // Version 1 did not record removed ids.
        var removed = version >= 2 ? ReadIds(ref reader) : [];
        return new SnapshotMetadata(index, term, new ConfState(voters, outgoing, learners, learnersNext, autoLeave == 1, removed));
    }

    private static ulong[] ReadIds(ref SpanReader reader)
    {
        var count = reader.ReadCount(1);
        var ids = new ulong[count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = reader.ReadVarint();
        }

        return ids;
    }

    private ref struct SpanWriter(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;

        public int Position { get; private set; }

        public void WriteByte(byte value) => _buffer[Position++] = value;

        public void WriteVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _buffer[Position++] = (byte)(value | 0x80);
                value >>= 7;
            }

            _buffer[Position++] = (byte)value;
        }

        public void WriteBytes(ReadOnlySpan<byte> bytes)
        {
            WriteVarint((ulong)bytes.Length);
            bytes.CopyTo(_buffer[Position..]);
            Position += bytes.Length;
        }
    }

    private ref struct SpanReader
    {
        // The bytes read end where the value ends; _whole is what a frame context copies (the whole
        // frame, so every message of the frame can share the copy), positions index both alike.
        private readonly ReadOnlySpan<byte> _source;
        private readonly ReadOnlySpan<byte> _whole;
        private readonly int _start;
        private readonly FrameDecodeContext? _context;
        private byte[]? _copy;
        private int _position;

        public SpanReader(ReadOnlySpan<byte> source)
        {
            _source = source;
            _whole = source;
        }

        public SpanReader(ReadOnlySpan<byte> frame, int offset, int length, FrameDecodeContext context)
        {
            _whole = frame;
            _source = frame[..(offset + length)];
            _start = offset;
            _position = offset;
            _context = context;
        }

        private readonly int Remaining => _source.Length - _position;

        public readonly MessageFormatException Fail(string what) =>
            new($"Malformed encoding at offset {_position - _start}: {what}.", _position - _start);

        public byte ReadVersion()
        {
            var version = ReadByte();
            if (version is < MinReadableVersion or > Version)
            {
                throw Fail($"unsupported version {version} (this build reads {MinReadableVersion} to {Version})");
            }

            return version;
        }

        public byte ReadByte()
        {
            if (_position >= _source.Length)
            {
                throw Fail("unexpected end of input");
            }

            return _source[_position++];
        }

        public ulong ReadVarint()
        {
            // Most fields are one byte (ids, terms, flags, small lengths), and nearly all the rest
            // two or three (data lengths, indexes below 2^21): those are taken without the loop.
            // The TCP transport's profile showed this method first among the decoder's costs.
            // A zero final byte after a continuation (not minimal) goes to the loop, which refuses it.
            var source = _source;
            var position = _position;
            if ((uint)position < (uint)source.Length)
            {
                uint b0 = source[position];
                if (b0 < 0x80)
                {
                    _position = position + 1;
                    return b0;
                }

                if ((uint)(position + 2) < (uint)source.Length)
                {
                    uint b1 = source[position + 1];
                    if (b1 - 1 < 0x7F)
                    {
                        _position = position + 2;
                        return (b0 & 0x7F) | (b1 << 7);
                    }

                    uint b2 = source[position + 2];
                    if (b1 >= 0x80 && b2 - 1 < 0x7F)
                    {
                        _position = position + 3;
                        return (b0 & 0x7F) | ((b1 & 0x7F) << 7) | (b2 << 14);
                    }
                }
            }

            return ReadMultiByteVarint();
        }

        private ulong ReadMultiByteVarint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = ReadByte();
                if (shift == 63 && b > 1)
                {
                    throw Fail("varint overflows 64 bits");
                }

                result |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80)
                {
                    // A zero final byte after a continuation is a longer spelling of a smaller
                    // number: refused, so every value has exactly one encoding.
                    if (b == 0 && shift > 0)
                    {
                        throw Fail("varint is not minimally encoded");
                    }

                    return result;
                }
            }

            throw Fail("varint longer than 10 bytes");
        }

        /// <summary>Reads a count of items each at least <paramref name="minItemBytes"/> long, refusing counts the input cannot hold.</summary>
        public int ReadCount(int minItemBytes)
        {
            var count = ReadVarint();

            // count * minItemBytes > Remaining, without a division (this runs once per decoded
            // message) and without overflow (Remaining and minItemBytes fit an int each).
            if (count > int.MaxValue || count * (ulong)minItemBytes > (ulong)Remaining)
            {
                throw Fail($"count {count} exceeds what the remaining {Remaining} bytes can hold");
            }

            return (int)count;
        }

        /// <summary>Reads a length-prefixed byte field without copying it and checks that it ends the input.</summary>
        public void SkipBytesToEnd()
        {
            var length = ReadVarint();
            if (length != (ulong)Remaining)
            {
                throw Fail($"length {length} does not match the remaining {Remaining} bytes");
            }

            _position = _source.Length;
        }

        public ReadOnlyMemory<byte> ReadBytes()
        {
            var length = ReadVarint();
            if (length > (ulong)Remaining)
            {
                throw Fail($"length {length} exceeds the remaining {Remaining} bytes");
            }

            if (length == 0)
            {
                return ReadOnlyMemory<byte>.Empty;
            }

            // One copy of the whole input backs every byte field, so decoding allocates O(input)
            // and the result never aliases the caller's (possibly pooled) buffer. With a frame
            // context the copy is the whole frame's, shared by all of its messages.
            _copy ??= _context is null ? _source.ToArray() : _context.FrameCopy(_whole);
            var memory = new ReadOnlyMemory<byte>(_copy, _position, (int)length);
            _position += (int)length;
            return memory;
        }

        public readonly void EnsureEnd()
        {
            if (Remaining != 0)
            {
                throw Fail($"{Remaining} trailing bytes");
            }
        }
    }
}
