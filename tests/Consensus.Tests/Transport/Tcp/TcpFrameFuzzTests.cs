using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Transport.Tcp;

/// <summary>
/// Random and mutated frames thrown at a live node of a committing cluster, one connection each
/// (every one of them must make the node refuse or close that connection): the node stays up,
/// its memory stays bounded, its connections are all closed again, and the cluster keeps
/// committing throughout. 100,000 frames by default; TCP_FUZZ_FRAMES sets another count (the
/// soak: 1,000,000), TCP_FUZZ_SEED replays one seed. The fuzzing's own time bound grows with the
/// frame count (<see cref="Bound"/>), so an opt-in soak of many frames is not cut off by a bound
/// sized for the default count on a loaded machine.
/// </summary>
[TestFixture]
public class TcpFrameFuzzTests
{
    private const int DefaultFrames = 100_000;
    private const int Workers = 8;

    /// <summary>
    /// Wall time allowed per frame: connect, send, and wait for the node to close, 8 connections at a
    /// time. A bound on a hang, not a timing: about 0.4–0.5 ms per frame at load 40–90 (the
    /// 1,000,000-frame soak in 428–512 s), slower above, so 2 ms leaves room for load 130.
    /// </summary>
    private static readonly TimeSpan s_perFrame = TimeSpan.FromMilliseconds(2);

    /// <summary>The least time the fuzzing is allowed, whatever the count (the default's 100,000 frames get it).</summary>
    private static readonly TimeSpan s_leastBound = TimeSpan.FromMinutes(9);

    [Test]
    public async Task RandomAndMutatedFramesCloseOnlyTheirConnectionsWhileTheClusterKeepsCommitting()
    {
        int frames = FrameCount();
        foreach (int seed in TestSeeds.Choose("TCP_FUZZ_SEED", "TCP_FUZZ_SEEDS", first: 1, defaultCount: 1))
        {
            TestContext.Out.WriteLine($"TCP_FUZZ_SEED={seed} TCP_FUZZ_FRAMES={frames}");
            await FuzzAsync(seed, frames);
        }
    }

    private static async Task FuzzAsync(int seed, int frames)
    {
        const int MaxFrameBytes = 64 * 1024;
        await using var cluster = await TcpCluster.StartAsync(3, seed: 1420 + seed, configureTransport: (_, o) => o with
        {
            MaxFrameSizeBytes = MaxFrameBytes,
            SnapshotChunkSizeBytes = 4096,
            FrameTimeout = TimeSpan.FromMilliseconds(300),
            HandshakeTimeout = TimeSpan.FromSeconds(2),
        });
        ulong target = cluster.LeaderId();
        ulong claimed = cluster.Nodes.Keys.First(id => id != target);
        var endPoint = cluster.Transports[target].LocalEndPoint;
        var transport = cluster.Transports[target];
        int steadyConnections = transport.InboundConnections;

        // The cluster commits all along: a proposer runs until the fuzzing ends.
        using var fuzzing = new CancellationTokenSource();
        int committedDuring = 0;
        var proposer = Task.Run(async () =>
        {
            // Paced (a proposal per 10 ms at most): the point is that commits go on, not to load the machine.
            using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
            while (!fuzzing.IsCancellationRequested)
            {
                await cluster.ProposeAsync($"during-{committedDuring}");
                committedDuring++;
                await pace.WaitForNextTickAsync();
            }
        });

        long memoryBefore = GC.GetTotalMemory(forceFullCollection: true);
        var watch = Stopwatch.StartNew();
        var kinds = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        long regenerated = 0;
        long thrown = 0;
        var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            var fuzzer = new TcpFrameFuzzer(new Random((seed * 31) + w), target, claimed, new HashSet<ulong>(cluster.Nodes.Keys.Where(id => id != target)), MaxFrameBytes);
            int mine = (frames / Workers) + (w < frames % Workers ? 1 : 0);
            var buffer = new byte[256];
            for (int i = 0; i < mine; i++)
            {
                var (bytes, kind) = fuzzer.Next();
                kinds.AddOrUpdate(kind, 1, (_, n) => n + 1);

                // Mostly the fuzzer ends its side after the bytes (a peer that sends garbage and
                // leaves); one connection in a hundred stays open, so a cut-off frame has to be
                // timed out by the node.
                bool stayOpen = i % 100 == 0;
                await SendAndAwaitCloseAsync(endPoint, bytes, buffer, stayOpen);
                Interlocked.Increment(ref thrown);
            }

            Interlocked.Add(ref regenerated, fuzzer.Regenerated);
        })).ToArray();
        var bound = Bound(frames);
        try
        {
            await Task.WhenAll(workers).WaitAsync(bound);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"{Interlocked.Read(ref thrown)} of {frames} fuzz connections done within the bound of {bound.TotalSeconds:0} s ({s_perFrame.TotalMilliseconds} ms a frame, at least {s_leastBound.TotalMinutes} min); {committedDuring} commands committed meanwhile");
        }

        watch.Stop();
        await fuzzing.CancelAsync();
        await proposer.WaitAsync(Waits.Limit);
        long memoryAfter = GC.GetTotalMemory(forceFullCollection: true);

        TestContext.Out.WriteLine($"{frames} fuzz connections in {watch.Elapsed.TotalSeconds:0.0} s of a bound of {bound.TotalSeconds:0} s ({string.Join(", ", kinds.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}"))}); {regenerated} mutations still decoded into deliverable messages and were mutated again");
        TestContext.Out.WriteLine($"node {target}: frame errors {transport.Metrics.FrameErrors}, refused handshakes {transport.Metrics.HandshakeFailures}; {committedDuring} commands committed meanwhile; managed heap {memoryBefore / 1024 / 1024} MiB before, {memoryAfter / 1024 / 1024} MiB after");

        Assert.That(transport.Metrics.FrameErrors + transport.Metrics.HandshakeFailures, Is.GreaterThan(frames / 2), "most fuzz connections were closed for a bad frame or a refused handshake (the rest: stalls, closes)");
        Assert.That(committedDuring, Is.GreaterThan(0), "the cluster committed while being fuzzed");
        Assert.That(memoryAfter - memoryBefore, Is.LessThan(64L * 1024 * 1024), "managed memory stays bounded");

        // Every fuzz connection is gone; the node still serves its cluster.
        await cluster.ProposeAsync("after-fuzzing");
        await cluster[target].ReadIndexAsync().AsTask().WaitAsync(Waits.Limit);
        Assert.That(cluster.Machines[target].Commands, Does.Contain("after-fuzzing"));
        Assert.That(transport.InboundConnections, Is.LessThanOrEqualTo(Math.Max(steadyConnections, 2) + 1), "no fuzz connection left open on the node");
    }

    /// <summary>Connects, sends <paramref name="bytes"/>, and waits for the node to close (a fuzz connection must never stay open).</summary>
    private static async Task SendAndAwaitCloseAsync(IPEndPoint endPoint, byte[] bytes, byte[] buffer, bool stayOpen)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            // The connect is inside: the node may accept and reset a connection before the connect
            // is seen to complete (seen once at load 24: "Connection reset by peer" from ConnectAsync),
            // and that is a close like any other.
            await socket.ConnectAsync(endPoint);
            await socket.SendAsync(bytes, SocketFlags.None);
            if (!stayOpen)
            {
                socket.Shutdown(SocketShutdown.Send);
            }

            using var bound = new CancellationTokenSource(Waits.Limit);
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, bound.Token) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // Reset by the node: closed, as it should be.
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"The node kept a fuzz connection open for {Waits.Limit}: {Convert.ToHexString(bytes)}");
        }

        // Close with a reset: no TIME_WAIT left behind, so a run of a million connections does not run out of ports.
        socket.LingerState = new LingerOption(true, 0);
    }

    /// <summary>How long <paramref name="frames"/> may take: <see cref="s_perFrame"/> each, at least <see cref="s_leastBound"/>.</summary>
    private static TimeSpan Bound(int frames) => TimeSpan.FromTicks(Math.Max(s_leastBound.Ticks, s_perFrame.Ticks * frames));

    private static int FrameCount()
    {
        string? value = Environment.GetEnvironmentVariable("TCP_FUZZ_FRAMES");
        return string.IsNullOrEmpty(value) ? DefaultFrames : int.Parse(value, NumberStyles.Integer, CultureInfo.InvariantCulture);
    }
}
