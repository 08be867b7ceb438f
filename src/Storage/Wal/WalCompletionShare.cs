using System.Collections.Concurrent;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// A share of one group commit's completed waiters, completed by one thread-pool work item.
/// </summary>
/// <remarks>
/// Completing a waiter queues its continuation to the thread pool with <c>preferLocal</c>. Called
/// on the log's syncer or writer thread (not pool threads) every continuation lands in the pool's
/// global queue and may wake a sleeping worker; called from a pool thread they land in that
/// thread's local queue, from which idle workers steal. With a thousand waiters per group the
/// first costs enough CPU to keep the log waiting for appenders (docs/benchmarks.md, write-ahead
/// log runs 7 and 8), so a large group goes to the pool in one work item per processor. Every continuation still runs
/// on its own work item: a slow one never delays another's completion.
/// </remarks>
internal sealed class WalCompletionShare : IThreadPoolWorkItem
{
    private readonly ConcurrentQueue<WalCompletionShare> _pool;

    public WalCompletionShare(ConcurrentQueue<WalCompletionShare> pool) => _pool = pool;

    public List<WalAppendWaiter> Waiters { get; } = [];

    public void Execute()
    {
        foreach (var waiter in Waiters)
        {
            waiter.Complete();
        }

        Waiters.Clear();
        _pool.Enqueue(this);
    }
}
