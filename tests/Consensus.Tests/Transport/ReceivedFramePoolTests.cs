using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Consensus.Transport;

namespace EmbeddedRaft.Consensus.Tests.Transport;

/// <summary>
/// The pool of received frames' arrays and the ledger that gives a follower's lent frames back: what
/// is rented fits its frame, what is returned is poisoned (in tests) and reused, memory stays bounded,
/// and a frame goes back only once its highest entry index is at or below the watermark, oldest first.
/// </summary>
[TestFixture]
public class ReceivedFramePoolTests
{
    [TestCase(ReceivedFramePool.SmallestPooledFrameBytes, ReceivedFramePool.SmallestClassBytes)]
    [TestCase(ReceivedFramePool.SmallestClassBytes, ReceivedFramePool.SmallestClassBytes)]
    [TestCase(ReceivedFramePool.SmallestClassBytes + 1, 2 * ReceivedFramePool.SmallestClassBytes)]
    [TestCase(100_000, 128 * 1024)]
    [TestCase(ReceivedFramePool.LargestClassBytes, ReceivedFramePool.LargestClassBytes)]
    public void ARentedArrayIsTheSmallestClassThatHoldsTheFrame(int frameBytes, int arrayBytes)
    {
        var array = new ReceivedFramePool().Rent(frameBytes);

        Assert.That(array, Is.Not.Null);
        Assert.That(array!.Length, Is.EqualTo(arrayBytes));
    }

    [TestCase(0)]
    [TestCase(ReceivedFramePool.SmallestPooledFrameBytes - 1)]
    [TestCase(ReceivedFramePool.LargestClassBytes + 1)]
    public void FramesTooSmallOrTooLargeAreNotPooled(int frameBytes)
    {
        Assert.That(new ReceivedFramePool().Rent(frameBytes), Is.Null);
    }

    [Test]
    public void ANegativeLengthIsRefused()
    {
        Assert.That(() => new ReceivedFramePool().Rent(-1), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void AReturnedArrayIsPoisonedAndRentedAgainForAFrameOfItsClass()
    {
        Assert.That(ReceivedFramePool.PoisonReturnedFrames, Is.True, "returned frames are poisoned in this run");
        var pool = new ReceivedFramePool();
        var array = pool.Rent(40_000)!;
        array.AsSpan().Fill(7);

        pool.Return(array);

        Assert.That(array.All(b => b == ReceivedFramePool.PoisonByte), Is.True, "poisoned the moment it is returned");
        Assert.That(pool.Rent(ReceivedFramePool.SmallestClassBytes + 1), Is.SameAs(array));
        Assert.That(pool.Reused, Is.EqualTo(1));
        Assert.That(pool.Rent(40_000), Is.Not.SameAs(array), "rented once, not twice");
    }

    [Test]
    public void AnArrayNotOfAClassSizeIsNotTakenBack()
    {
        var pool = new ReceivedFramePool();
        var foreign = new byte[ReceivedFramePool.SmallestClassBytes + 8];

        pool.Return(foreign);

        Assert.That(foreign.All(b => b == 0), Is.True, "not poisoned: never the pool's");
        Assert.That(pool.Rent(ReceivedFramePool.SmallestClassBytes + 8), Is.Not.SameAs(foreign));
        Assert.That(pool.Reused, Is.Zero);
    }

    [Test]
    public void AtMostMaxIdleBytesWaitInThePool()
    {
        var pool = new ReceivedFramePool();
        var count = (int)(ReceivedFramePool.MaxIdleBytes / ReceivedFramePool.LargestClassBytes) + 4;
        var arrays = Enumerable.Range(0, count).Select(_ => pool.Rent(ReceivedFramePool.LargestClassBytes)!).ToList();
        foreach (var array in arrays)
        {
            pool.Return(array);
        }

        var reused = 0;
        for (var i = 0; i < count; i++)
        {
            if (arrays.Contains(pool.Rent(ReceivedFramePool.LargestClassBytes)!))
            {
                reused++;
            }
        }

        Assert.That(reused, Is.EqualTo((int)(ReceivedFramePool.MaxIdleBytes / ReceivedFramePool.LargestClassBytes)), "the rest were left to the collector");
    }

    [Test]
    public void TheLedgerGivesFramesBackOldestFirstOnceTheirHighestIndexIsAtOrBelowTheWatermark()
    {
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());
        var first = Frame(ledger, 10);
        var second = Frame(ledger, 20);
        var third = Frame(ledger, 30);
        ledger.Record([first, second, third], isFollower: true, lastIndex: 30);

        ledger.ReturnUpTo(19);
        Assert.That((ledger.Count, ledger.ReturnedTotal), Is.EqualTo((2, 1L)), "the frame up to 10 only");
        Assert.That(second.Buffer.Any(b => b == ReceivedFramePool.PoisonByte), Is.False, "a frame above the watermark is untouched");

        ledger.ReturnUpTo(30);
        Assert.That((ledger.Count, ledger.ReturnedTotal), Is.EqualTo((0, 3L)));
    }

    [Test]
    public void TheLedgerStopsAtTheFirstFrameNotYetFreeEvenIfALaterOneIs()
    {
        // Frames are recorded in arrival order; a later frame may carry lower indexes (a new
        // leader's overwrite). Returning stops at the oldest not yet free: late, never early.
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());
        var high = Frame(ledger, 50);
        var low = Frame(ledger, 20);
        ledger.Record([high, low], isFollower: true, lastIndex: 50);

        ledger.ReturnUpTo(30);

        Assert.That((ledger.Count, ledger.ReturnedTotal), Is.EqualTo((2, 0L)));
        Assert.That(low.Buffer.Any(b => b == ReceivedFramePool.PoisonByte), Is.False);
    }

    [Test]
    public void ALedgerOfANodeThatIsNotAFollowerRecordsNothing()
    {
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());

        ledger.Record([Frame(ledger, 5)], isFollower: false, lastIndex: 5);
        ledger.ReturnUpTo(100);

        Assert.That((ledger.Count, ledger.ReturnedTotal), Is.EqualTo((0, 0L)));
    }

    [Test]
    public void AFrameWithEntriesBeyondTheLogsEndIsForgottenNotRecorded()
    {
        // Refused entries: their index may never be reached, and recorded the frame would hold back
        // every frame behind it.
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());
        var refused = Frame(ledger, 40);
        var accepted = Frame(ledger, 12);

        ledger.Record([refused, accepted], isFollower: true, lastIndex: 12);
        ledger.ReturnUpTo(12);

        Assert.That((ledger.Count, ledger.ReturnedTotal), Is.EqualTo((0, 1L)));
        Assert.That(refused.Buffer.Any(b => b == ReceivedFramePool.PoisonByte), Is.False, "never returned");
    }

    [Test]
    public void AFrameLentWithoutAnEntryIsAnInvariantViolation()
    {
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());

        Assert.That(() => ledger.Record([new LentFrame(new byte[ReceivedFramePool.SmallestClassBytes], 0)], isFollower: true, lastIndex: 10),
            Throws.InstanceOf<InvariantViolationException>());
    }

    [Test]
    public void ForgottenFramesAreNeverReturned()
    {
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());
        var frame = Frame(ledger, 3);
        ledger.Record([frame], isFollower: true, lastIndex: 3);

        ledger.ForgetAll();
        ledger.ReturnUpTo(100);

        Assert.That((ledger.Count, ledger.ReturnedTotal), Is.EqualTo((0, 0L)));
        Assert.That(frame.Buffer.Any(b => b == ReceivedFramePool.PoisonByte), Is.False);
    }

    [Test]
    public void AtMostMaxHeldBytesAreRecordedTheOldestForgottenPastThat()
    {
        var ledger = new ReceivedFrameLedger(new ReceivedFramePool());
        var count = (int)(ReceivedFrameLedger.MaxHeldBytes / ReceivedFramePool.LargestClassBytes) + 3;
        var frames = Enumerable.Range(1, count)
            .Select(i => Frame(ledger, (ulong)i, ReceivedFramePool.LargestClassBytes))
            .ToArray();

        ledger.Record(frames, isFollower: true, lastIndex: (ulong)count);

        Assert.That(ledger.Count, Is.EqualTo(count - 3));
        ledger.ReturnUpTo((ulong)count);
        Assert.That(ledger.ReturnedTotal, Is.EqualTo(count - 3));
        Assert.That(frames.Take(3).All(f => f.Buffer.All(b => b != ReceivedFramePool.PoisonByte)), Is.True, "the three oldest were forgotten");
    }

    // Cleared: a rented array is uninitialized, and may be memory an earlier test poisoned.
    private static LentFrame Frame(ReceivedFrameLedger ledger, ulong highestEntryIndex, int bytes = ReceivedFramePool.SmallestClassBytes)
    {
        var buffer = ledger.Pool.Rent(bytes)!;
        buffer.AsSpan().Clear();
        return new LentFrame(buffer, highestEntryIndex);
    }
}
