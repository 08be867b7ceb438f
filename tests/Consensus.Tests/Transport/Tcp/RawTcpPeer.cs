using System.Buffers;
using System.Net;
using System.Net.Sockets;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport.Tcp;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>Peer 1 of node 2, by hand: a socket that sends the handshake, then whatever bytes the test writes (so which messages share a frame and a write is the test's choice).</summary>
internal sealed class RawTcpPeer : IAsyncDisposable
{
    private readonly Socket _socket;

    private RawTcpPeer(Socket socket) => _socket = socket;

    public static async Task<RawTcpPeer> ConnectAsync(IPEndPoint node)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(node).WaitAsync(Waits.Limit);
            var hello = new ArrayBufferWriter<byte>();
            TcpFrame.WriteHello(hello, new TcpHello(TcpFrame.ProtocolVersion, TcpConnectionKind.Messages, ClusterId: 0, SenderId: 1, ReceiverId: 2));
            await socket.SendAsync(hello.WrittenMemory, SocketFlags.None);

            // The answer: a HelloAccepted frame (a header with an empty body).
            var answer = new byte[TcpFrame.HeaderSizeBytes];
            int read = 0;
            while (read < answer.Length)
            {
                int n = await socket.ReceiveAsync(answer.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(Waits.Limit);
                Assert.That(n, Is.GreaterThan(0), "the node closed the connection during the handshake");
                read += n;
            }

            Assert.That((TcpFrameType)answer[0], Is.EqualTo(TcpFrameType.HelloAccepted));
            return new RawTcpPeer(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Writes <paramref name="bytes"/> in one send.</summary>
    public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes, SocketFlags.None);

    /// <summary>Reads exactly <paramref name="count"/> bytes; null when the node closed the connection first.</summary>
    public async Task<byte[]?> ReceiveAsync(int count)
    {
        var bytes = new byte[count];
        int read = 0;
        while (read < count)
        {
            int n;
            try
            {
                n = await _socket.ReceiveAsync(bytes.AsMemory(read), SocketFlags.None).AsTask().WaitAsync(Waits.Limit);
            }
            catch (SocketException)
            {
                return null; // reset by the node
            }

            if (n == 0)
            {
                return null;
            }

            read += n;
        }

        return bytes;
    }

    /// <summary>Each array as one Messages frame, the frames back to back.</summary>
    public static byte[] Frames(params Message[][] frames)
    {
        var bytes = new List<byte>();
        foreach (var frame in frames)
        {
            var body = new List<byte>();
            foreach (var message in frame)
            {
                var encoded = MessageCodec.Encode(message);
                var prefix = new byte[5];
                body.AddRange(prefix.AsSpan(0, TcpFrame.WriteVarint(prefix, (uint)encoded.Length)).ToArray());
                body.AddRange(encoded);
            }

            var header = new byte[TcpFrame.HeaderSizeBytes];
            TcpFrame.WriteHeader(header, TcpFrameType.Messages, body.Count);
            bytes.AddRange(header);
            bytes.AddRange(body);
        }

        return [.. bytes];
    }

    public ValueTask DisposeAsync()
    {
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
