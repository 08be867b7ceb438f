using System.Buffers.Binary;
using System.Text;
using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>
/// The cluster tests' application: it records every command it applies, in order, with its index
/// (its whole history, carried through snapshots), and answers each command with the index it
/// was applied at. In memory: after a restart it starts empty and the node restores it from the
/// newest snapshot and replays the log after it.
/// </summary>
/// <remarks>
/// The snapshot is the history (count, then index, length and UTF-8 bytes of each command)
/// followed by <see cref="SnapshotPaddingBytes"/> bytes of a checked pattern, so a test can make
/// snapshots larger than a transport chunk. A restore checks the pattern and the length.
/// </remarks>
internal sealed class HistoryStateMachine(ulong nodeId, Action<string>? trace = null) : IStateMachine<ulong>
{
    private readonly List<AppliedCommand> _history = [];

    public ulong NodeId { get; } = nodeId;

    public int SnapshotPaddingBytes { get; init; }

    public ulong AppliedIndex { get; private set; }

    public int Restores { get; private set; }

    public IReadOnlyList<AppliedCommand> History => _history;

    public bool HasApplied(string command) => _history.Exists(c => c.Command == command);

    public ValueTask<IReadOnlyList<ulong>> ApplyAsync(CommittedBatch batch, CancellationToken cancellationToken)
    {
        var results = new ulong[batch.Commands.Count];
        for (int i = 0; i < batch.Commands.Count; i++)
        {
            var command = batch.Commands[i];
            var applied = new AppliedCommand(command.Index, Encoding.UTF8.GetString(command.Data.Span));
            _history.Add(applied);
            trace?.Invoke($"n{NodeId} apply {applied.Index} {applied.Command}");
            results[i] = command.Index;
        }

        AppliedIndex = batch.LastIndex;
        return ValueTask.FromResult<IReadOnlyList<ulong>>(results);
    }

    public IStateMachineSnapshot CreateSnapshot() => new Snapshot(AppliedIndex, [.. _history], SnapshotPaddingBytes);

    public async ValueTask RestoreAsync(ulong index, Stream data, CancellationToken cancellationToken)
    {
        var header = new byte[4];
        await data.ReadExactlyAsync(header, cancellationToken);
        int count = BinaryPrimitives.ReadInt32LittleEndian(header);
        var restored = new List<AppliedCommand>(count);
        var fixedPart = new byte[12];
        for (int i = 0; i < count; i++)
        {
            await data.ReadExactlyAsync(fixedPart, cancellationToken);
            ulong commandIndex = BinaryPrimitives.ReadUInt64LittleEndian(fixedPart);
            var text = new byte[BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(8))];
            await data.ReadExactlyAsync(text, cancellationToken);
            restored.Add(new AppliedCommand(commandIndex, Encoding.UTF8.GetString(text)));
        }

        await data.ReadExactlyAsync(header, cancellationToken);
        int padding = BinaryPrimitives.ReadInt32LittleEndian(header);
        var piece = new byte[4096];
        for (int done = 0; done < padding;)
        {
            int length = Math.Min(piece.Length, padding - done);
            await data.ReadExactlyAsync(piece.AsMemory(0, length), cancellationToken);
            for (int i = 0; i < length; i++)
            {
                if (piece[i] != PaddingByte(done + i))
                {
                    throw new InvalidDataException($"Snapshot padding damaged at byte {done + i}.");
                }
            }

            done += length;
        }

        if (await data.ReadAsync(piece, cancellationToken) != 0)
        {
            throw new InvalidDataException("Snapshot longer than its contents.");
        }

        _history.Clear();
        _history.AddRange(restored);
        AppliedIndex = index;
        Restores++;
        trace?.Invoke($"n{NodeId} restore {index} ({count} commands)");
    }

    private static byte PaddingByte(int position) => (byte)((position * 31) + 7);

    private sealed class Snapshot(ulong index, AppliedCommand[] history, int paddingBytes) : IStateMachineSnapshot
    {
        public ulong Index { get; } = index;

        public async ValueTask WriteToAsync(Stream destination, CancellationToken cancellationToken)
        {
            var header = new byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(header, history.Length);
            await destination.WriteAsync(header, cancellationToken);
            foreach (var command in history)
            {
                var text = Encoding.UTF8.GetBytes(command.Command);
                var fixedPart = new byte[12];
                BinaryPrimitives.WriteUInt64LittleEndian(fixedPart, command.Index);
                BinaryPrimitives.WriteInt32LittleEndian(fixedPart.AsSpan(8), text.Length);
                await destination.WriteAsync(fixedPart, cancellationToken);
                await destination.WriteAsync(text, cancellationToken);
            }

            BinaryPrimitives.WriteInt32LittleEndian(header, paddingBytes);
            await destination.WriteAsync(header, cancellationToken);
            var piece = new byte[4096];
            for (int done = 0; done < paddingBytes;)
            {
                int length = Math.Min(piece.Length, paddingBytes - done);
                for (int i = 0; i < length; i++)
                {
                    piece[i] = PaddingByte(done + i);
                }

                await destination.WriteAsync(piece.AsMemory(0, length), cancellationToken);
                done += length;
            }
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
