namespace EmbeddedRaft.Consensus.Host;

/// <summary>One <see cref="RaftNode{TResult}.ReadIndexAsync"/> call: completes once its round's read index is applied.</summary>
internal sealed class ReadWaiter
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ReadWaiter(long deadlineTick)
    {
        DeadlineTick = deadlineTick;
    }

    public long DeadlineTick { get; set; }

    public Task Task => _completion.Task;

    public bool IsDone => _completion.Task.IsCompleted;

    public CancellationTokenRegistration Registration { get; set; }

    public void Complete()
    {
        if (_completion.TrySetResult())
        {
            Registration.Dispose();
        }
    }

    public void Fail(Exception error)
    {
        if (_completion.TrySetException(error))
        {
            Registration.Dispose();
        }
    }

    public void Cancel(CancellationToken token)
    {
        if (_completion.TrySetCanceled(token))
        {
            Registration.Dispose();
        }
    }
}
