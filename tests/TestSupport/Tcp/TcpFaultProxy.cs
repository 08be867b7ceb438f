using System.Net;
using System.Net.Sockets;

namespace EmbeddedRaft.TestSupport.Tcp;

/// <summary>
/// A TCP proxy in front of one node's listener, for fault tests over real sockets: it forwards
/// bytes both ways until told to <see cref="CutAll"/> (reset every connection mid-stream), to
/// <see cref="Delay"/> every piece it forwards, to <see cref="BlackHole"/> (connections stay open,
/// bytes vanish: the sender learns nothing), or to cut the next snapshot connection halfway
/// (<see cref="CutNextSnapshotAfterBytes"/>). It reads the plain-TCP handshake to tell snapshot
/// connections from message connections.
/// </summary>
public sealed class TcpFaultProxy : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<Link> _links = [];
    private readonly Task _accepting;
    private long _snapshotCutAfterBytes = -1;
    private int _snapshotCuts;
    private int _snapshotConnections;
    private bool _blackHole;

    public TcpFaultProxy(IPEndPoint target)
    {
        Target = target;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(64);
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accepting = AcceptAsync();
    }

    public IPEndPoint EndPoint { get; }

    public string Address => EndPoint.ToString();

    /// <summary>Where new connections go (existing ones stay where they are).</summary>
    public IPEndPoint Target { get; set; }

    /// <summary>Added before forwarding each piece read (0: none).</summary>
    public TimeSpan Delay { get; set; }

    public int SnapshotCuts { get { lock (_lock) { return _snapshotCuts; } } }

    /// <summary>Snapshot connections seen toward the node (each a snapshot streamed to it, whole or cut).</summary>
    public int SnapshotConnections { get { lock (_lock) { return _snapshotConnections; } } }

    public int Connections { get { lock (_lock) { return _links.Count; } } }

    /// <summary>Resets every open connection now (both sides see the connection break mid-stream).</summary>
    public void CutAll()
    {
        List<Link> links;
        lock (_lock)
        {
            links = [.. _links];
        }

        foreach (var link in links)
        {
            link.Cut();
        }
    }

    /// <summary>
    /// On: every byte read from now on is dropped, and so is a connection's end (one side's close or
    /// reset does not reach the other: as on a real black-holed path, each side learns only from its
    /// own silence); connections stay open. Off: every link is cut (a stream that lost bytes is broken
    /// mid-frame, and a swallowed close must reach its side) and forwarding resumes.
    /// </summary>
    public void BlackHole(bool on)
    {
        lock (_lock)
        {
            _blackHole = on;
        }

        if (!on)
        {
            CutAll();
        }
    }

    /// <summary>The next snapshot connection is reset once this many bytes went through toward the node.</summary>
    public void CutNextSnapshotAfterBytes(long bytes)
    {
        lock (_lock)
        {
            _snapshotCutAfterBytes = bytes;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Dispose();
        CutAll();
        await _accepting;
        Task[] running;
        lock (_lock)
        {
            running = [.. _links.Select(l => l.Running)];
        }

        await Task.WhenAll(running);
        _stop.Dispose();
    }

    private bool IsBlackHoled
    {
        get { lock (_lock) { return _blackHole; } }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }

            var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.NoDelay = true;
            try
            {
                await server.ConnectAsync(Target, _stop.Token);
            }
            catch (Exception) when (!_stop.IsCancellationRequested)
            {
                // The node behind is down: the client sees its connection reset.
                client.Close(0);
                server.Dispose();
                continue;
            }
            catch (OperationCanceledException)
            {
                client.Dispose();
                server.Dispose();
                return;
            }

            var link = new Link(this, client, server);
            lock (_lock)
            {
                _links.Add(link);
            }

            link.Start();
        }
    }

    private void Remove(Link link)
    {
        lock (_lock)
        {
            _links.Remove(link);
        }
    }

    /// <summary>Counts a snapshot connection; whether it (toward the node) is to be cut after a number of bytes: consumes the one-shot setting.</summary>
    private long TakeSnapshotCut()
    {
        lock (_lock)
        {
            _snapshotConnections++;
            long after = _snapshotCutAfterBytes;
            if (after >= 0)
            {
                _snapshotCutAfterBytes = -1;
                _snapshotCuts++;
            }

            return after;
        }
    }

    private sealed class Link(TcpFaultProxy proxy, Socket client, Socket server)
    {
        public Task Running { get; private set; } = Task.CompletedTask;

        public void Start() => Running = RunAsync();

        private int _cut;

        public void Cut()
        {
            if (Interlocked.Exchange(ref _cut, 1) != 0)
            {
                return;
            }

            // A zero linger closes with a reset, as a broken path or a crashed host would look.
            foreach (var socket in new[] { client, server })
            {
                try
                {
                    socket.LingerState = new LingerOption(true, 0);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                }

                socket.Close();
            }
        }

        private async Task RunAsync()
        {
            try
            {
                await Task.WhenAll(PumpAsync(client, server, towardNode: true), PumpAsync(server, client, towardNode: false));
            }
            finally
            {
                Cut();
                proxy.Remove(this);
            }
        }

        private async Task PumpAsync(Socket from, Socket to, bool towardNode)
        {
            var buffer = new byte[16 * 1024];
            long forwarded = 0;
            long cutAfter = -1;
            bool inspected = !towardNode;
            var head = new List<byte>();
            try
            {
                while (true)
                {
                    int read = await from.ReceiveAsync(buffer, SocketFlags.None);
                    if (read == 0)
                    {
                        // A black hole swallows the end of a connection as it swallows bytes: the
                        // far end must learn of it only by its own silence timer.
                        if (!proxy.IsBlackHoled)
                        {
                            to.Shutdown(SocketShutdown.Send);
                        }

                        return;
                    }

                    if (!inspected)
                    {
                        // The plain handshake: type 1, a 4-byte length, "ERTP", version, kind (2 = snapshot).
                        head.AddRange(buffer.AsSpan(0, Math.Min(read, 16 - head.Count)).ToArray());
                        if (head.Count >= 11)
                        {
                            inspected = true;
                            if (head[0] == 1 && head[10] == 2)
                            {
                                cutAfter = proxy.TakeSnapshotCut();
                            }
                        }
                    }

                    if (proxy.IsBlackHoled)
                    {
                        continue;
                    }

                    if (proxy.Delay > TimeSpan.Zero)
                    {
                        await Task.Delay(proxy.Delay);
                    }

                    if (cutAfter >= 0 && forwarded + read >= cutAfter)
                    {
                        int part = (int)Math.Max(0, cutAfter - forwarded);
                        await to.SendAsync(buffer.AsMemory(0, part), SocketFlags.None);
                        Cut();
                        return;
                    }

                    await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
                    forwarded += read;
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // A reset is swallowed by a black hole too; the link is cut once both directions
                // ended (RunAsync), or when the path heals (BlackHole(false) cuts every link).
                if (!proxy.IsBlackHoled)
                {
                    Cut();
                }
            }
        }
    }
}
