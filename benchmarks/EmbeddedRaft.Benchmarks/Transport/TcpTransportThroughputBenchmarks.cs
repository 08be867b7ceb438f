using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Transport;
using EmbeddedRaft.Consensus.Transport.Tcp;

namespace EmbeddedRaft.Benchmarks.Transport;

/// <summary>
/// Throughput of one <see cref="TcpTransport"/> to another over loopback: each operation sends
/// one Append message carrying one entry of <see cref="EntryBytes"/> bytes (or, for the probe's
/// measured-shape rows, <see cref="EntriesPerMessage"/> entries), and an invocation
/// sends <see cref="MessagesPerInvoke"/> of them and waits until the receiving transport has
/// handed every one to its receiver (decoded). Beside it, in the same run, a raw socket (or a raw
/// <see cref="SslStream"/> with TLS) copies exactly the bytes the transport put on the wire for
/// the same messages, in 64 KiB writes, to a reader that only counts them: the ceiling.
/// Mean time per operation is the inverse of messages per second; MiB/s = message bytes / mean.
/// </summary>
/// <remarks>
/// Runs in-process (the generated out-of-process project fails to restore here: NU1109 between
/// the benchmark project's Logging.Abstractions override and the central version).
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(InProcessConfig))]
public class TcpTransportThroughputBenchmarks
{
    private const int MessagesPerInvoke = 20_000;

    private TcpTransport _sender = null!;
    private TcpTransport _receiver = null!;
    private CountingReceiver _counting = null!;
    private IDisposable _binding = null!;
    private Message _message = null!;
    private long _wireBytesPerInvoke;
    private RawPipe _raw = null!;
    private byte[] _rawChunk = [];

    /// <summary>Bytes of the one entry each Append carries.</summary>
    [Params(128, 1024)]
    public int EntryBytes { get; set; }

    /// <summary>Mutual TLS on the connection (and on the raw stream beside it).</summary>
    [Params(false, true)]
    public bool Tls { get; set; }

    /// <summary>
    /// Entries each Append carries (1 for the BenchmarkDotNet rows). With more, an invocation sends
    /// <see cref="MessagesPerInvocation"/> = 20,000 / this many messages, so it moves about the same
    /// entries and bytes as a one-entry invocation: the shape RaftNode's appends have under load
    /// (<c>cluster-load --shape</c>), beside the one-entry row.
    /// </summary>
    public int EntriesPerMessage { get; set; } = 1;

    /// <summary>Messages one invocation sends.</summary>
    public int MessagesPerInvocation => Math.Max(1, MessagesPerInvoke / EntriesPerMessage);

    [GlobalSetup]
    public void Setup()
    {
        _message = AppendMessage(EntryBytes, EntriesPerMessage);

        TcpTransportTlsOptions? tls = Tls ? BenchmarkCertificates.TlsOptions() : null;
        _receiver = new TcpTransport(new TcpTransportOptions { NodeId = 2, Tls = tls });
        _sender = new TcpTransport(new TcpTransportOptions { NodeId = 1, Tls = tls, SendQueueCapacity = 2 * MessagesPerInvoke });
        _receiver.SetPeerAddress(1, _sender.LocalEndPoint.ToString());
        _sender.SetPeerAddress(2, _receiver.LocalEndPoint.ToString());
        _counting = new CountingReceiver();
        _binding = _receiver.Bind(2, _counting);

        // One invocation first: connects, and measures the wire bytes the raw copy repeats. Each
        // step of the set-up is printed with its time, so a set-up that stalls says where.
        Step("transports listening; first invocation (connects)");
        long before = _sender.Metrics.BytesSent;
        TransportOnce();
        _wireBytesPerInvoke = _sender.Metrics.BytesSent - before;
        Step("first invocation done; opening the raw stream");
        _raw = RawPipe.Open(tls);
        Step("raw stream open");
        _rawChunk = new byte[64 * 1024];
        new Random(15).NextBytes(_rawChunk);
        Console.WriteLine($"// {MessagesPerInvocation} messages of {EntriesPerMessage} entries, {MessageCodec.GetEncodedLength(_message)} bytes = {_wireBytesPerInvoke} bytes on the wire per invocation");
    }

    /// <summary>The message every operation sends: an Append from node 1 to node 2 carrying <paramref name="entries"/> entries of <paramref name="entryBytes"/> random bytes each.</summary>
    internal static Message AppendMessage(int entryBytes, int entries = 1)
    {
        var random = new Random(14);
        var slots = new Entry[entries];
        for (int i = 0; i < entries; i++)
        {
            var data = new byte[entryBytes];
            random.NextBytes(data);
            slots[i] = new Entry(3, 1_000_001 + (ulong)i, EntryType.Normal, data);
        }

        return new Message
        {
            Type = MessageType.Append,
            From = 1,
            To = 2,
            Term = 3,
            LogTerm = 3,
            Index = 1_000_000,
            Commit = 999_999,
            Entries = slots,
        };
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        // The write granularity the transport reached (the raw copy always writes 64 KiB).
        var sent = _sender.Metrics;
        Console.WriteLine($"// transport: {sent.MessagesSent} messages in {sent.Flushes} flushes: {sent.MessagesSent / Math.Max(1, sent.Flushes)} messages, {sent.BytesSent / Math.Max(1, sent.Flushes)} bytes per flush");
        _binding.Dispose();
        _sender.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _receiver.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _raw.Dispose();
    }

    /// <summary>Send every message through the transport; done when the receiver has taken all of them.</summary>
    [Benchmark(OperationsPerInvoke = MessagesPerInvoke)]
    public void TcpTransportSend() => TransportOnce();

    /// <summary>The same wire bytes through a bare socket (or SslStream), written in 64 KiB pieces and only counted by the reader.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = MessagesPerInvoke)]
    public void RawSocketCopy() => _raw.Copy(_rawChunk, _wireBytesPerInvoke);

    private void TransportOnce()
    {
        int messages = MessagesPerInvocation;
        long target = _counting.Count + messages;
        var done = _counting.WaitFor(target);
        long droppedBefore = _sender.Metrics.MessagesDropped;
        for (int i = 0; i < messages; i++)
        {
            _sender.Send(_message);
        }

        if (!done.Wait(TimeSpan.FromSeconds(60)))
        {
            var m = _sender.Metrics;
            throw new InvalidOperationException($"Only {_counting.Count - (target - messages)} of {messages} messages arrived in 60 s; {m.MessagesDropped - droppedBefore} dropped; sender: {m.Connects} connects, {m.TlsFailures} TLS failures, {m.HandshakeFailures} refused handshakes.");
        }
    }

    private void Step(string what) =>
        Console.WriteLine(FormattableString.Invariant($"// {DateTime.UtcNow:HH:mm:ss.fff} set-up {EntryBytes} B{(Tls ? " TLS" : string.Empty)}: {what}"));

    private sealed class InProcessConfig : ManualConfig
    {
        public InProcessConfig() =>
            AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(10));
    }

    private sealed class CountingReceiver : IRaftMessageReceiver
    {
        private long _count;
        private long _target = long.MaxValue;
        private TaskCompletionSource _reached = new();

        public long Count => Interlocked.Read(ref _count);

        public Task WaitFor(long target)
        {
            _reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _target, target);
            if (Count >= target)
            {
                _reached.TrySetResult();
            }

            return _reached.Task;
        }

        public void Receive(Message message) => Add(1);

        // A frame's messages at once, as RaftNode takes them (one inbox item per frame).
        public void ReceiveBatch(ReadOnlySpan<Message> messages) => Add(messages.Length);

        private void Add(int messages)
        {
            if (Interlocked.Add(ref _count, messages) >= Volatile.Read(ref _target))
            {
                _reached.TrySetResult();
            }
        }

        public ValueTask ReceiveSnapshotAsync(Message snapshotMessage, Stream data, CancellationToken cancellationToken) => throw new NotSupportedException();

        public void ReportUnreachable(ulong peerId)
        {
        }
    }

    /// <summary>A connected pair of streams over loopback (plain or TLS) and a reader that counts bytes.</summary>
    private sealed class RawPipe : IDisposable
    {
        private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

        private readonly Stream _writer;
        private readonly Stream _reader;
        private readonly Socket[] _sockets;

        private RawPipe(Stream writer, Stream reader, Socket[] sockets)
        {
            _writer = writer;
            _reader = reader;
            _sockets = sockets;
        }

        public static RawPipe Open(TcpTransportTlsOptions? tls)
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.Connect(listener.LocalEndPoint!);
            var server = listener.Accept();
            server.NoDelay = true;
            Stream writer = new NetworkStream(client, ownsSocket: true);
            Stream reader = new NetworkStream(server, ownsSocket: true);
            if (tls is not null)
            {
                // Both handshakes asynchronous and bounded (a set-up that cannot finish fails with
                // what it was waiting for instead of hanging the run), with the transport's own
                // TLS settings, so the raw stream does the same TLS work per byte.
                var clientSsl = new SslStream(writer);
                var serverSsl = new SslStream(reader);
                var certificate = tls.ServerCertificate!();
                using var timeout = new CancellationTokenSource(HandshakeTimeout);
                var accepting = serverSsl.AuthenticateAsServerAsync(
                    new SslServerAuthenticationOptions
                    {
                        ServerCertificate = certificate,
                        ClientCertificateRequired = true,
                        RemoteCertificateValidationCallback = tls.IsRemoteCertificateValid,
                        EnabledSslProtocols = tls.EnabledProtocols,
                        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    },
                    timeout.Token);
                var connecting = clientSsl.AuthenticateAsClientAsync(
                    new SslClientAuthenticationOptions
                    {
                        TargetHost = "127.0.0.1",
                        ClientCertificates = [certificate],
                        RemoteCertificateValidationCallback = tls.IsRemoteCertificateValid,
                        EnabledSslProtocols = tls.EnabledProtocols,
                        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    },
                    timeout.Token);
                try
                {
                    Task.WhenAll(accepting, connecting).GetAwaiter().GetResult();
                }
                catch (OperationCanceledException)
                {
                    throw new TimeoutException($"The raw TLS stream's handshake did not finish within {HandshakeTimeout.TotalSeconds} s (server {accepting.Status}, client {connecting.Status}).");
                }

                writer = clientSsl;
                reader = serverSsl;
            }

            return new RawPipe(writer, reader, [client, server]);
        }

        public void Copy(byte[] chunk, long bytes)
        {
            var reading = Task.Run(() =>
            {
                var buffer = new byte[64 * 1024];
                long left = bytes;
                while (left > 0)
                {
                    int read = _reader.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                    if (read == 0)
                    {
                        throw new IOException("The raw stream closed.");
                    }

                    left -= read;
                }
            });
            long remaining = bytes;
            while (remaining > 0)
            {
                int count = (int)Math.Min(chunk.Length, remaining);
                _writer.Write(chunk, 0, count);
                remaining -= count;
            }

            _writer.Flush();
            reading.GetAwaiter().GetResult();
        }

        public void Dispose()
        {
            _writer.Dispose();
            _reader.Dispose();
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }
    }
}
