using System.Buffers.Binary;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>
/// The sharing rules of RaftNode's read-index rounds, driven as the loop drives them: callers of one
/// tick share one group; a round answers only the callers that joined before it started (a read
/// arriving after a round started is answered by a later round, never by that one); a round
/// completes its callers only once its read index is applied, in one pass on one thread that is not
/// the loop's; deadlines fail a group; a stopped node fails every caller, later ones too.
/// </summary>
[TestFixture]
public sealed class ReadIndexRoundsTests
{
    private const long TimeoutTicks = 50;

    [Test]
    public void AReadArrivingAfterARoundStartedIsNotAnsweredByThatRound()
    {
        var scheduler = new ManualScheduler();
        var rounds = new ReadIndexRounds(scheduler, () => { });
        ulong requestIds = 100;
        Assert.That(rounds.TryJoin(TimeoutTicks, out var early, out _), Is.True);
        var firstRound = rounds.TryStartRound(ref requestIds, tick: 0);
        Assert.That(firstRound, Is.Not.Null, "a caller waits: a round starts");

        // Joins while the first round runs (its read index may be fixed before this caller arrived).
        Assert.That(rounds.TryJoin(TimeoutTicks, out var late, out var wakeLoop), Is.True);
        Assert.That(wakeLoop, Is.True, "the loop took the waiting callers since the last wake-up: it must be woken again");
        Assert.That(late, Is.Not.SameAs(early), "a caller joining after a round started is in a group of its own");
        Assert.That(rounds.TryStartRound(ref requestIds, tick: 0), Is.Null, "one round at a time");

        // The first round is answered and its index applied: only the caller that joined before it is released.
        rounds.OnReadState(new ReadState(7, firstRound!));
        rounds.CompleteUpTo(7);
        Assert.That(scheduler.RunPending(), Is.EqualTo(1), "one release pass");
        Assert.That(early.IsCompletedSuccessfully, Is.True);
        Assert.That(late.IsCompleted, Is.False, "the first round's answer must not release a caller that joined after it started");

        // The late caller's own round: an answer to the old round is ignored; its own completes it once applied.
        var secondRound = rounds.TryStartRound(ref requestIds, tick: 1);
        Assert.That(secondRound, Is.Not.Null);
        Assert.That(RoundId(secondRound!), Is.Not.EqualTo(RoundId(firstRound!)));
        rounds.OnReadState(new ReadState(9, firstRound!));
        rounds.CompleteUpTo(9);
        Assert.That(scheduler.RunPending(), Is.Zero, "a stale answer (the first round's context) releases nothing");
        rounds.OnReadState(new ReadState(9, secondRound!));
        rounds.CompleteUpTo(8);
        Assert.That(scheduler.RunPending(), Is.Zero, "confirmed at 9 but applied only up to 8");
        Assert.That(late.IsCompleted, Is.False);
        rounds.CompleteUpTo(9);
        Assert.That(scheduler.RunPending(), Is.EqualTo(1));
        Assert.That(late.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void NoRoundStartsWhileAReleasePassRunsAndThePassEndWakesTheLoop()
    {
        var scheduler = new ManualScheduler();
        int wakes = 0;
        var rounds = new ReadIndexRounds(scheduler, () => wakes++);
        var requestIds = new ulong[1];
        var first = ReleaseOneReader(rounds, requestIds, tick: 0);

        // In the pass, the released reader reads again at once and the loop looks for a round meanwhile.
        Task? again = null;
        bool wakeFromReader = true;
        byte[]? startedDuringPass = null;
        _ = first.ContinueWith(
            done =>
            {
                rounds.TryJoin(TimeoutTicks, out again, out wakeFromReader);
                startedDuringPass = rounds.TryStartRound(ref requestIds[0], tick: 1);
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        Assert.That(scheduler.RunPending(), Is.EqualTo(1));
        Assert.That(wakeFromReader, Is.False, "a reader joining during a pass does not wake the loop: the pass's end does");
        Assert.That(startedDuringPass, Is.Null, "no round while the pass runs: its readers would trickle into tiny rounds");
        Assert.That(wakes, Is.EqualTo(1), "the pass's end woke the loop for the reader waiting");
        Assert.That(rounds.TryStartRound(ref requestIds[0], tick: 1), Is.Not.Null, "after the pass, a round takes the reader");
        Assert.That(again!.IsCompleted, Is.False);
    }

    [Test]
    public void NoRoundStartsWhileAReleasePassWaitsInTheQueueSoItsReadersShareTheNextRound()
    {
        var scheduler = new ManualScheduler();
        int wakes = 0;
        var rounds = new ReadIndexRounds(scheduler, () => wakes++);
        var requestIds = new ulong[1];
        var first = ReleaseOneReader(rounds, requestIds, tick: 0);

        // The pass is queued, not yet run; another reader arrives and the loop looks for a round.
        rounds.TryJoin(TimeoutTicks, out var newcomer, out var wakeFromNewcomer);
        Assert.That(wakeFromNewcomer, Is.False, "a queued pass's end wakes the loop: a reader joining before it need not");
        Assert.That(rounds.TryStartRound(ref requestIds[0], tick: 0), Is.Null,
            "no round for the newcomer alone while the released reader has not run yet: the two would go round in rounds of one");

        Task? again = null;
        _ = first.ContinueWith(
            done => rounds.TryJoin(TimeoutTicks, out again, out _),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        Assert.That(scheduler.RunPending(), Is.EqualTo(1));
        Assert.That(wakes, Is.EqualTo(1), "the pass's end woke the loop");

        var shared = rounds.TryStartRound(ref requestIds[0], tick: 0);
        Assert.That(shared, Is.Not.Null);
        rounds.OnReadState(new ReadState(2, shared!));
        rounds.CompleteUpTo(2);
        scheduler.RunPending();
        Assert.That(newcomer.IsCompletedSuccessfully && again!.IsCompletedSuccessfully, Is.True,
            "one round answered the newcomer and the reader the pass released");
    }

    [Test]
    public void APassThatOutlastsTheHoldNoLongerHoldsRoundsBack()
    {
        var scheduler = new ManualScheduler();
        var rounds = new ReadIndexRounds(scheduler, () => { });
        var requestIds = new ulong[1];
        rounds.Expire(10, () => new TimeoutException("unused"));
        var first = ReleaseOneReader(rounds, requestIds, tick: 10);

        // A continuation that blocks (here: lets ticks pass) must not stop every later read.
        byte[]? heldBack = [];
        byte[]? startedLater = null;
        _ = first.ContinueWith(
            done =>
            {
                rounds.TryJoin(TimeoutTicks, out _, out _);
                heldBack = rounds.TryStartRound(ref requestIds[0], tick: 10 + ReadIndexRounds.PassHoldTicks - 1);
                rounds.Expire(10 + ReadIndexRounds.PassHoldTicks, () => new TimeoutException("unused"));
                startedLater = rounds.TryStartRound(ref requestIds[0], tick: 10 + ReadIndexRounds.PassHoldTicks);
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        scheduler.RunPending();
        Assert.That(heldBack, Is.Null, "within the hold, the pass holds the round back");
        Assert.That(startedLater, Is.Not.Null, "past the hold, the round starts while the pass still runs");
    }

    [Test]
    public async Task CallersOfOneTickShareOneGroupReleasedInOnePassOffTheLoop()
    {
        var rounds = new ReadIndexRounds(TaskScheduler.Default, () => { });
        ulong requestIds = 0;
        var tasks = new List<Task>();
        var wakes = new List<bool>();
        for (int i = 0; i < 5; i++)
        {
            Assert.That(rounds.TryJoin(TimeoutTicks, out var task, out var wake), Is.True);
            tasks.Add(task);
            wakes.Add(wake);
        }

        Assert.That(tasks.Distinct().Count(), Is.EqualTo(1), "callers of one tick share one task");
        Assert.That(wakes, Is.EqualTo(new[] { true, false, false, false, false }), "only the first caller wakes the loop");

        // Continuations as awaiting callers register them: they must all run on one thread (one
        // pass), a pool thread, not the thread that released the round (the loop).
        var threads = new List<(int Thread, bool Pool)>();
        var continuations = Enumerable.Range(0, 3).Select(_ => tasks[0].ContinueWith(
            done =>
            {
                lock (threads)
                {
                    threads.Add((Environment.CurrentManagedThreadId, Thread.CurrentThread.IsThreadPoolThread));
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default)).ToArray();

        var context = rounds.TryStartRound(ref requestIds, tick: 0)!;
        rounds.OnReadState(new ReadState(3, context));
        int loopThread = Environment.CurrentManagedThreadId;
        rounds.CompleteUpTo(3);
        await Task.WhenAll(continuations).WaitAsync(Waits.Limit);

        Assert.That(threads.Select(t => t.Thread).Distinct().Count(), Is.EqualTo(1), "one pass: every continuation on the same thread");
        Assert.That(threads[0].Thread, Is.Not.EqualTo(loopThread), "never on the loop");
        Assert.That(threads[0].Pool, Is.True);
    }

    [Test]
    public void CallersOfDifferentTicksHaveTheirOwnDeadlinesInOneRound()
    {
        var scheduler = new ManualScheduler();
        var rounds = new ReadIndexRounds(scheduler, () => { });
        ulong requestIds = 0;
        rounds.Expire(10, () => new TimeoutException("unused"));
        rounds.TryJoin(TimeoutTicks, out var atTen, out _);
        rounds.Expire(11, () => new TimeoutException("unused"));
        rounds.TryJoin(TimeoutTicks, out var atEleven, out _);
        Assert.That(atEleven, Is.Not.SameAs(atTen), "a new tick starts a new group");
        var context = rounds.TryStartRound(ref requestIds, tick: 11);
        Assert.That(context, Is.Not.Null);

        // Unanswered: the tick-10 group fails at 10 + timeout, the tick-11 one stays in the round.
        rounds.Expire(10 + TimeoutTicks - 1, () => new TimeoutException("read timed out"));
        Assert.That(scheduler.RunPending(), Is.Zero, "no deadline passed yet");
        rounds.Expire(10 + TimeoutTicks, () => new TimeoutException("read timed out"));
        Assert.That(scheduler.RunPending(), Is.EqualTo(1));
        Assert.That(atTen.Exception?.InnerException, Is.TypeOf<TimeoutException>().With.Message.EqualTo("read timed out"));
        Assert.That(atEleven.IsCompleted, Is.False);

        rounds.OnReadState(new ReadState(1, context!));
        rounds.CompleteUpTo(1);
        Assert.That(scheduler.RunPending(), Is.EqualTo(1));
        Assert.That(atEleven.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void AWaitingGroupFailsAtItsDeadlineAndTheNextCallerStartsAFreshOne()
    {
        var scheduler = new ManualScheduler();
        var rounds = new ReadIndexRounds(scheduler, () => { });
        rounds.TryJoin(TimeoutTicks, out var expiring, out _);
        rounds.Expire(TimeoutTicks, () => new NoLeaderException(1, 0));
        Assert.That(scheduler.RunPending(), Is.EqualTo(1));
        Assert.That(expiring.Exception?.InnerException, Is.TypeOf<NoLeaderException>());

        ulong requestIds = 0;
        Assert.That(rounds.TryStartRound(ref requestIds, tick: TimeoutTicks), Is.Null, "nothing waits any more");
        rounds.TryJoin(TimeoutTicks, out var fresh, out _);
        Assert.That(fresh, Is.Not.SameAs(expiring));
        Assert.That(rounds.TryStartRound(ref requestIds, tick: TimeoutTicks), Is.Not.Null);
    }

    [Test]
    public void AStoppedNodeFailsEveryCallerWaitingOrInARoundAndEveryLaterOne()
    {
        var rounds = new ReadIndexRounds(TaskScheduler.Default, () => { });
        ulong requestIds = 0;
        rounds.TryJoin(TimeoutTicks, out var inRound, out _);
        Assert.That(rounds.TryStartRound(ref requestIds, tick: 0), Is.Not.Null);
        rounds.Expire(1, () => new TimeoutException("unused"));
        rounds.TryJoin(TimeoutTicks, out var waiting, out _);

        var stopped = new NodeStoppedException(1, null);
        rounds.FailAll(stopped);
        Assert.That(async () => await inRound.WaitAsync(Waits.Limit), Throws.TypeOf<NodeStoppedException>());
        Assert.That(async () => await waiting.WaitAsync(Waits.Limit), Throws.TypeOf<NodeStoppedException>());

        Assert.That(rounds.TryJoin(TimeoutTicks, out var later, out var wake), Is.False);
        Assert.That(wake, Is.False);
        Assert.That(async () => await later, Throws.TypeOf<NodeStoppedException>());
    }

    private static ulong RoundId(byte[] context) => BinaryPrimitives.ReadUInt64LittleEndian(context);

    /// <summary>Queues release passes until the test runs them, on its own thread.</summary>
    /// <summary>One reader joins, its round starts at <paramref name="tick"/> and is answered and applied: its release pass is queued, not yet run.</summary>
    private static Task ReleaseOneReader(ReadIndexRounds rounds, ulong[] requestIds, long tick)
    {
        rounds.TryJoin(TimeoutTicks, out var reader, out _);
        var context = rounds.TryStartRound(ref requestIds[0], tick);
        rounds.OnReadState(new ReadState(1, context!));
        rounds.CompleteUpTo(1);
        return reader;
    }

    private sealed class ManualScheduler : TaskScheduler
    {
        private readonly Queue<Task> _tasks = new();

        /// <summary>Runs every queued task (and those they queue); returns how many ran.</summary>
        public int RunPending()
        {
            int ran = 0;
            while (true)
            {
                Task? next;
                lock (_tasks)
                {
                    if (!_tasks.TryDequeue(out next))
                    {
                        return ran;
                    }
                }

                TryExecuteTask(next);
                ran++;
            }
        }

        protected override void QueueTask(Task task)
        {
            lock (_tasks)
            {
                _tasks.Enqueue(task);
            }
        }

        protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

        protected override IEnumerable<Task> GetScheduledTasks()
        {
            lock (_tasks)
            {
                return [.. _tasks];
            }
        }
    }
}
