using System.IO.Pipelines;

namespace EmbeddedRaft.Consensus.Transport;

/// <summary>
/// Runs a pipe's continuations on a <see cref="TaskScheduler"/>: the snapshot pipe's reader and
/// writer resume on the scheduler of the node that started the transfer, so a single-threaded
/// simulation keeps every step on its one thread (PipeScheduler.ThreadPool would leave it).
/// </summary>
internal sealed class TaskSchedulerPipeScheduler(TaskScheduler scheduler) : PipeScheduler
{
    public override void Schedule(Action<object?> action, object? state) =>
        _ = Task.Factory.StartNew(action, state, CancellationToken.None, TaskCreationOptions.DenyChildAttach, scheduler);
}
