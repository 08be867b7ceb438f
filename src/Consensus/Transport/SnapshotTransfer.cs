using System.IO.Pipelines;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// One snapshot sent over an <see cref="InProcessNetwork"/>: the sender copies the data into a
/// pipe one piece at a time while the receiver reads it from the other end and saves it, as over
/// a stream connection. The pipe holds at most two pieces (back-pressure), so the snapshot is
/// never whole in memory. Between pieces the link is checked: a cut link or a stopped receiver
/// fails the transfer on both ends.
/// </summary>
internal sealed class SnapshotTransfer(InProcessNetwork network, ulong from, Message message, IRaftMessageReceiver receiver)
{
    public async ValueTask RunAsync(Stream data, CancellationToken cancellationToken)
    {
        int chunkSizeBytes = network.Options.SnapshotChunkSizeBytes;
        var pipeScheduler = new TaskSchedulerPipeScheduler(TaskScheduler.Current);
        var pipe = new Pipe(new PipeOptions(
            pauseWriterThreshold: 2L * chunkSizeBytes,
            resumeWriterThreshold: chunkSizeBytes,
            readerScheduler: pipeScheduler,
            writerScheduler: pipeScheduler,
            useSynchronizationContext: false));

        Task receiving = ReceiveAsync(pipe.Reader, cancellationToken);
        Exception? sendFailure = null;
        try
        {
            await CopyAsync(data, pipe.Writer, chunkSizeBytes, cancellationToken);
            await pipe.Writer.CompleteAsync();
        }
#pragma warning disable CA1031 // Handed to the receiver through the pipe, then rethrown below.
        catch (Exception failure)
#pragma warning restore CA1031
        {
            sendFailure = failure;
            await pipe.Writer.CompleteAsync(failure);
        }

        try
        {
            await receiving;
        }
        catch (Exception) when (sendFailure is not null)
        {
            // The receiver failed because the sender did: the sender's failure is the cause.
        }

        if (sendFailure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(sendFailure);
        }
    }

    private async Task ReceiveAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        // The receiver's stream ends where the sender completes the pipe; a sender failure
        // surfaces as an exception from the receiver's read.
        await using var stream = reader.AsStream(leaveOpen: true);
        try
        {
            await receiver.ReceiveSnapshotAsync(message, stream, cancellationToken);
            await reader.CompleteAsync();
        }
        catch (Exception failure)
        {
            await reader.CompleteAsync(failure);
            throw;
        }
    }

    private async ValueTask CopyAsync(Stream data, PipeWriter writer, int chunkSizeBytes, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Memory<byte> piece = writer.GetMemory(chunkSizeBytes)[..chunkSizeBytes];
            int filled = 0;
            while (filled < chunkSizeBytes)
            {
                int read = await data.ReadAsync(piece[filled..], cancellationToken);
                if (read == 0)
                {
                    break;
                }

                filled += read;
            }

            if (filled == 0)
            {
                return;
            }

            network.EnsureStillReachable(from, message.To, receiver);
            writer.Advance(filled);
            FlushResult flushed = await writer.FlushAsync(cancellationToken);
            if (flushed.IsCompleted)
            {
                // The receiver stopped reading (it finished, or failed: its task says which).
                return;
            }

            if (filled < chunkSizeBytes)
            {
                return;
            }
        }
    }
}
