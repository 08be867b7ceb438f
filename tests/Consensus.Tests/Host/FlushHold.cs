using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// Holds the threads that flush a node's write-ahead log until <see cref="Release"/> (or disposal):
/// an fsync that does not return. Installed by <see cref="PipelineCluster.HoldFlushesOf"/>.
/// </summary>
internal sealed class FlushHold : IDisposable
{
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when a flush of the node's log has started (and is being held).</summary>
    public Task Entered => _entered.Task;

    public void Block()
    {
        _entered.TrySetResult();
        _released.Task.WaitOrFail("the test releasing a held flush");
    }

    public void Release() => _released.TrySetResult();

    public void Dispose() => Release();
}
