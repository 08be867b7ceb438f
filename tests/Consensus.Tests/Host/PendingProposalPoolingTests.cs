using EmbeddedRaft.Consensus.Host;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// A proposal's call object is pooled once its caller took a successful result, and only then: a
/// result taken twice is refused and returns the object once, and failed or cancellable calls never
/// come back, so no later call is answered with another's outcome or left unanswered.
/// </summary>
/// <remarks>
/// Each test answers calls of its own result type: the pool is per closed generic type, so each
/// test's pool holds only what that test returned to it.
/// </remarks>
[TestFixture]
public sealed class PendingProposalPoolingTests
{
    [Test]
    public void ACallWhoseResultWasTakenServesTheNextCallWithAFreshToken()
    {
        var first = Rent<Reused>(1);
        var firstTask = Answer(first, new Reused(1));
        Assert.That(Take(firstTask).N, Is.EqualTo(1));

        var second = Rent<Reused>(2);
        Assert.That(second, Is.SameAs(first), "a call answered and taken is reused");
        Assert.That(second.RequestId, Is.EqualTo(2UL));
        Assert.That(second.DeadlineTick, Is.Zero);
        Assert.That(second.ProposedAsLeader, Is.False);
        var secondTask = Answer(second, new Reused(2));
        Assert.That(Take(secondTask).N, Is.EqualTo(2), "the reused call is answered with its own result");
    }

    [Test]
    public void AResultTakenTwiceIsRefusedAndReturnsTheCallToThePoolOnce()
    {
        var call = Rent<TakenTwice>(1);
        var task = Answer(call, new TakenTwice(1));

        Assert.That(Take(task).N, Is.EqualTo(1));
        Assert.That(() => Take(task), Throws.InvalidOperationException, "a ValueTask's result is taken once");

        var next = Rent<TakenTwice>(2);
        var other = Rent<TakenTwice>(3);
        Assert.That(other, Is.Not.SameAs(next), "the call was returned to the pool once, so two calls never share it");
        var nextTask = Answer(next, new TakenTwice(2));
        var otherTask = Answer(other, new TakenTwice(3));
        Assert.That((Take(nextTask).N, Take(otherTask).N), Is.EqualTo((2, 3)));
    }

    [Test]
    public void AStaleResultTakenAfterTheCallWasReusedLeavesTheLaterCallAlone()
    {
        var call = Rent<Stale>(1);
        var stale = Answer(call, new Stale(1));
        Assert.That(Take(stale).N, Is.EqualTo(1));

        var later = Rent<Stale>(2);
        Assert.That(later, Is.SameAs(call));
        var laterTask = new ValueTask<Stale>(later, later.Version);
        Assert.That(() => Take(stale), Throws.InvalidOperationException, "before the later call is answered");
        Assert.That(laterTask.IsCompleted, Is.False, "the stale take answered nothing");

        Assert.That(later.TryMarkProposed(), Is.True);
        Assert.That(later.TryClaimSuccess(), Is.True);
        later.SetClaimedResult(new Stale(2));
        Assert.That(() => Take(stale), Throws.InvalidOperationException, "after it is answered");
        Assert.That(Take(laterTask).N, Is.EqualTo(2), "the later call keeps its own answer");
        Assert.That(Rent<Stale>(3), Is.Not.SameAs(Rent<Stale>(4)), "returned once, by the later call's own take");
    }

    [Test]
    public async Task AFailedCallIsNeverPooled()
    {
        var call = Rent<Failed>(1);
        var task = new ValueTask<Failed>(call, call.Version);
        Assert.That(call.TryMarkProposed(), Is.True);
        call.Fail(new ProposalDroppedException(ProposalDropReason.TimedOut));

        Assert.That(async () => await task, Throws.InstanceOf<ProposalDroppedException>());
        await Task.Yield();
        Assert.That(Rent<Failed>(2), Is.Not.SameAs(call), "its caller may still hold the failure; the pool stays empty");
    }

    [Test]
    public void ACancellableCallIsNeverPooled()
    {
        var call = PendingProposal<Cancellable>.Rent(1, [1], TaskScheduler.Default, cancellable: true);
        var task = Answer(call, new Cancellable(1));

        Assert.That(Take(task).N, Is.EqualTo(1));
        Assert.That(Rent<Cancellable>(2), Is.Not.SameAs(call), "its token's callback may still run against it");
    }

    [Test]
    public void ASecondAnswerForOneCallIsAnInvariantViolation()
    {
        var call = Rent<AnsweredTwice>(1);
        var task = new ValueTask<AnsweredTwice>(call, call.Version);
        Assert.That(call.TryClaimSuccess(), Is.True);
        call.SetClaimedResult(new AnsweredTwice(1));

        Assert.That(() => call.SetClaimedResult(new AnsweredTwice(2)), Throws.InstanceOf<InvariantViolationException>());
        Assert.That(Take(task).N, Is.EqualTo(1), "the first answer stands");
    }

    // Takes a completed call's result as an awaiter does (GetResult), synchronously; taking one
    // twice is the misuse some tests make on purpose.
    private static T Take<T>(ValueTask<T> task)
    {
        Assert.That(task.IsCompleted, Is.True, "answered before it is taken");
#pragma warning disable CA2012 // a completed ValueTask's result, taken twice on purpose by some tests
        return task.Result;
#pragma warning restore CA2012
    }

    private static PendingProposal<T> Rent<T>(ulong requestId) =>
        PendingProposal<T>.Rent(requestId, [1, 2, 3], TaskScheduler.Default, cancellable: false);

    // The applier's success path: proposed, claimed, answered (as a ProposalRelease does).
    private static ValueTask<T> Answer<T>(PendingProposal<T> call, T result)
    {
        var task = new ValueTask<T>(call, call.Version);
        Assert.That(call.TryMarkProposed(), Is.True);
        Assert.That(call.TryClaimSuccess(), Is.True);
        call.SetClaimedResult(result);
        return task;
    }

    private sealed record Reused(int N);

    private sealed record TakenTwice(int N);

    private sealed record Stale(int N);

    private sealed record Failed(int N);

    private sealed record Cancellable(int N);

    private sealed record AnsweredTwice(int N);
}
