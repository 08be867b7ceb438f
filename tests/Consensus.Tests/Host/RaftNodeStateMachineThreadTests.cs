using System.Collections.Concurrent;
using System.Text;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A state machine's apply may complete on a thread of its own (the replicated store's MVCC writer
/// does, to save a thread-pool hand-off per batch), and the node's apply pipeline goes on on that
/// thread; but it must move back to its scheduler before it captures a snapshot (IStateMachine's
/// threading remarks): a capture that waits for the state machine's thread would wait for itself.
/// </summary>
public sealed class RaftNodeStateMachineThreadTests
{
    private static ReadOnlyMemory<byte> Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [Test]
    public async Task ASnapshotIsNeverCapturedOnTheThreadTheApplyCompletedOn()
    {
        using var machine = new OwnThreadStateMachine();
        await using var cluster = new HostCluster(seed: 2204);
        await using var node = await RaftNode<long>.StartAsync(cluster.Options(1, [1]) with { SnapshotEveryEntries = 5 }, machine, cluster.Network.CreateTransport(1));
        var deadline = DateTime.UtcNow + Waits.Limit;
        while (node.Status.LeaderId != 1)
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the single node elects itself");
            await Task.Delay(10);
        }

        for (var i = 0; i < 40; i++)
        {
            await node.ProposeAsync(Bytes($"c{i}")).AsTask().WaitAsync(Waits.Limit);
        }

        await node.WaitForSnapshotAsync(30).WaitAsync(Waits.Limit);
        Assert.That(machine.AppliesCompletedOnOwnThread, Is.GreaterThanOrEqualTo(40), "the applies completed on the state machine's thread (the path under test ran)");
        Assert.That(machine.Captures, Is.GreaterThanOrEqualTo(3), "a snapshot every 5 entries (one at a time)");
        Assert.That(machine.CapturesOnOwnThread, Is.Zero, "captures made on the thread the apply completed on");
    }

    /// <summary>
    /// A <see cref="RecordingStateMachine"/> whose every apply completes on a dedicated thread (the
    /// way a store's writer thread completes it), which records where the node captures it.
    /// </summary>
    private sealed class OwnThreadStateMachine : IStateMachine<long>, IDisposable
    {
        private readonly RecordingStateMachine _inner = new();
        private readonly BlockingCollection<TaskCompletionSource> _completions = [];
        private readonly Thread _thread;
        private int _appliesOnOwnThread;
        private int _capturesOnOwnThread;

        public OwnThreadStateMachine()
        {
            _thread = new Thread(() =>
            {
                foreach (var completion in _completions.GetConsumingEnumerable())
                {
                    // Not asynchronous: the apply's continuation, and so the node's, runs here.
                    completion.SetResult();
                }
            })
            { IsBackground = true, Name = "state machine's own thread" };
            _thread.Start();
        }

        public int AppliesCompletedOnOwnThread => Volatile.Read(ref _appliesOnOwnThread);

        public int Captures => _inner.Captures;

        public int CapturesOnOwnThread => Volatile.Read(ref _capturesOnOwnThread);

        public ulong AppliedIndex => _inner.AppliedIndex;

        public async ValueTask<IReadOnlyList<long>> ApplyAsync(CommittedBatch batch, CancellationToken cancellationToken)
        {
            var results = await _inner.ApplyAsync(batch, cancellationToken);
            var done = new TaskCompletionSource();
            _completions.Add(done, cancellationToken);
            await done.Task.ConfigureAwait(false);
            if (Thread.CurrentThread == _thread)
            {
                Interlocked.Increment(ref _appliesOnOwnThread);
            }

            return results;
        }

        public IStateMachineSnapshot CreateSnapshot()
        {
            if (Thread.CurrentThread == _thread)
            {
                Interlocked.Increment(ref _capturesOnOwnThread);
            }

            return _inner.CreateSnapshot();
        }

        public ValueTask RestoreAsync(ulong index, Stream data, CancellationToken cancellationToken) => _inner.RestoreAsync(index, data, cancellationToken);

        public void Dispose()
        {
            _completions.CompleteAdding();
            _thread.Join();
            _completions.Dispose();
        }
    }
}
