using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// The writer's free page list: single pages come from the longest free runs first, lone free pages
/// wait (the file grows instead) while free pages are a small part of the file, and a rolled-back
/// transaction leaves the free pages exactly as they were.
/// </summary>
public class FreelistTests
{
    private const long LargeFile = 1_000_000;

    [Test]
    public void SinglePagesComeFromTheLongestRunFirstInPageOrder()
    {
        var freelist = Loaded(10, 20, 21, 22, 30, 31, 40);
        freelist.BeginTransaction();

        long[] taken = [.. Enumerable.Range(0, 5).Select(_ => freelist.TryAllocate(1, LargeFile))];

        Assert.That(taken, Is.EqualTo(new long[] { 20, 21, 22, 30, 31 }));
    }

    [Test]
    public void LonePagesWaitWhileFreePagesAreASmallPartOfTheFile()
    {
        var freelist = Loaded(10, 20, 30);
        freelist.BeginTransaction();

        Assert.That(freelist.TryAllocate(1, LargeFile), Is.EqualTo(-1), "grow the file rather than scatter the writes");
        Assert.That(freelist.FreeCount, Is.EqualTo(3));
    }

    [Test]
    public void LonePagesAreUsedOnceFreePagesAreALargePartOfTheFile()
    {
        var freelist = Loaded(10, 20, 30);
        freelist.BeginTransaction();
        long smallFile = (long)(3 / Freelist.MaxFreeFractionBeforeLonePages);

        Assert.That(freelist.TryAllocate(1, smallFile), Is.EqualTo(10));
        Assert.That(freelist.TryAllocate(1, smallFile), Is.EqualTo(-1), "two free pages of the file's 24 are under the fraction again");
    }

    [Test]
    public void MultiPageRunsTakeTheFrontOfARunLongEnoughAndSkipTakenPages()
    {
        var freelist = Loaded(5, 6, 10, 11, 12, 13, 14, 20, 21, 22);
        freelist.BeginTransaction();

        Assert.That(freelist.TryAllocate(1, LargeFile), Is.EqualTo(10));
        Assert.That(freelist.TryAllocate(3, LargeFile), Is.EqualTo(11));
        Assert.That(freelist.TryAllocate(3, LargeFile), Is.EqualTo(20));
        Assert.That(freelist.TryAllocate(3, LargeFile), Is.EqualTo(-1));
        Assert.That(freelist.TryAllocate(2, LargeFile), Is.EqualTo(5));
        Assert.That(freelist.Snapshot(), Is.EqualTo(new long[] { 14 }));
    }

    [Test]
    public void CommittingRemovesTheTakenPagesAndKeepsTheRestSorted()
    {
        var freelist = Loaded(3, 4, 8, 9, 10, 15, 16);
        freelist.BeginTransaction();
        long a = freelist.TryAllocate(1, LargeFile);
        long b = freelist.TryAllocate(1, LargeFile);
        long c = freelist.TryAllocate(2, LargeFile);
        freelist.Free(txid: 7, firstPage: 50, count: 2);

        freelist.CommitTransaction();

        Assert.That(new[] { a, b, c }, Is.EqualTo(new long[] { 8, 9, 3 }));
        Assert.That(freelist.FreeCount, Is.EqualTo(3));
        Assert.That(freelist.Snapshot(), Is.EqualTo(new long[] { 10, 15, 16, 50, 51 }));
        freelist.Release(7);
        freelist.BeginTransaction();
        Assert.That(freelist.TryAllocate(1, LargeFile), Is.EqualTo(15), "runs are planned afresh from what is left");
    }

    [Test]
    public void TheFreelistReserveIsTheTailOfTheBestFittingRunAndNothingElseTakesIt()
    {
        // Runs: 10..17 (8 pages), 30..32 (3), 40..43 (4). A reserve of 3 fits 30..32 best.
        var freelist = Loaded(10, 11, 12, 13, 14, 15, 16, 17, 30, 31, 32, 40, 41, 42, 43);
        freelist.BeginTransaction(freelistReservePages: 3);

        long[] singles = [.. Enumerable.Range(0, 12).Select(_ => freelist.TryAllocate(1, LargeFile))];
        long reserve = freelist.TryTakeFreelistReserve(neededPages: 2, out int pages);

        Assert.That(singles, Is.EqualTo(new long[] { 10, 11, 12, 13, 14, 15, 16, 17, 40, 41, 42, 43 }));
        Assert.That(freelist.TryAllocate(1, LargeFile), Is.EqualTo(-1), "only the reserve is left");
        Assert.That(freelist.TryAllocate(2, LargeFile), Is.EqualTo(-1), "multi-page runs do not take the reserve either");
        Assert.That((reserve, pages), Is.EqualTo((30L, 3)), "the whole reserve, so the run keeps its length");
        freelist.CommitTransaction();
        Assert.That(freelist.Snapshot(), Is.Empty);
    }

    [Test]
    public void AReserveTooSmallForTheFreelistIsNotTakenAndStaysFree()
    {
        var freelist = Loaded(5, 6, 20, 21, 22, 23);
        freelist.BeginTransaction(freelistReservePages: 2);

        long single = freelist.TryAllocate(1, LargeFile);
        long reserve = freelist.TryTakeFreelistReserve(neededPages: 3, out int pages);
        freelist.CommitTransaction();

        Assert.That(single, Is.EqualTo(20), "the reserve is 5..6, the best fit; singles come from the longest run");
        Assert.That((reserve, pages), Is.EqualTo((-1L, 0)));
        Assert.That(freelist.Snapshot(), Is.EqualTo(new long[] { 5, 6, 21, 22, 23 }));
    }

    [Test]
    public void ARunOnlyPartlyReservedLendsItsFrontToSinglePages()
    {
        var freelist = Loaded(50, 51, 52, 53, 54);
        freelist.BeginTransaction(freelistReservePages: 2);

        long[] singles = [.. Enumerable.Range(0, 4).Select(_ => freelist.TryAllocate(1, LargeFile))];
        long reserve = freelist.TryTakeFreelistReserve(neededPages: 1, out int pages);

        Assert.That(singles, Is.EqualTo(new long[] { 50, 51, 52, -1 }));
        Assert.That((reserve, pages), Is.EqualTo((53L, 2)));
    }

    [TestCase(3, 0, ExpectedResult = 4, TestName = "A first freelist run is rounded up to a power of two")]
    [TestCase(5, 8, ExpectedResult = 8, TestName = "A need that fits keeps the length")]
    [TestCase(3, 8, ExpectedResult = 8, TestName = "A need just over a quarter keeps the length")]
    [TestCase(2, 8, ExpectedResult = 2, TestName = "A need of a quarter or less shrinks the run")]
    [TestCase(9, 8, ExpectedResult = 16, TestName = "A need over the length doubles it")]
    [TestCase(1, 1, ExpectedResult = 1, TestName = "One page stays one page")]
    public int FreelistRunLengthsChangeOnlyByDoublingOrQuartering(int neededPages, int previousPages) =>
        Freelist.RunCapacityPages(neededPages, previousPages);

    [Test]
    public void RollingBackLeavesTheFreePagesAsTheyWere()
    {
        var freelist = Loaded(3, 4, 8, 9, 10, 15);
        freelist.BeginTransaction();
        freelist.TryAllocate(1, LargeFile);
        freelist.TryAllocate(2, LargeFile);
        freelist.Free(txid: 7, firstPage: 50, count: 2);

        freelist.Rollback(7);

        Assert.That(freelist.Snapshot(), Is.EqualTo(new long[] { 3, 4, 8, 9, 10, 15 }));
        Assert.That(freelist.TotalCount, Is.EqualTo(6));
        freelist.BeginTransaction();
        Assert.That(freelist.TryAllocate(1, LargeFile), Is.EqualTo(8));
    }

    [TestCaseSource(nameof(ModelSeeds))]
    public void AllocationsMatchAModelOfFreePagesAcrossCommitsAndRollbacks(int seed)
    {
        var random = new Random(seed);
        var freelist = new Freelist();
        var free = new SortedSet<long>();
        var pending = new SortedDictionary<long, List<long>>();
        long pageCount = 2;
        for (long txid = 1; txid <= 300; txid++)
        {
            freelist.Release(txid - 1 - random.Next(3));
            SyncModel(freelist, free, pending);
            // Half the transactions set aside a reserve for their freelist run, as commits do.
            int reserve = random.Next(2) == 0 ? random.Next(1, 6) : 0;
            freelist.BeginTransaction(reserve);
            var taken = new List<long>();
            long count = pageCount;
            for (int i = random.Next(40); i > 0; i--)
            {
                int pages = random.Next(8) == 0 ? random.Next(2, 5) : 1;
                long page = freelist.TryAllocate(pages, count);
                if (page < 0)
                {
                    page = count;
                    count += pages;
                }
                else
                {
                    for (int p = 0; p < pages; p++)
                    {
                        Assert.That(free.Contains(page + p), Is.True, $"seed {seed}: page {page + p} handed out but not free");
                        Assert.That(taken.Contains(page + p), Is.False, $"seed {seed}: page {page + p} handed out twice");
                    }
                }

                taken.AddRange(Enumerable.Range(0, pages).Select(p => page + p));
            }

            if (reserve > 0)
            {
                long first = freelist.TryTakeFreelistReserve(random.Next(1, reserve + 2), out int reservePages);
                if (first >= 0)
                {
                    Assert.That(reservePages, Is.EqualTo(reserve), $"seed {seed}: the whole reserve is taken");
                    for (long p = first; p < first + reservePages; p++)
                    {
                        Assert.That(free.Contains(p), Is.True, $"seed {seed}: reserved page {p} is not free");
                        Assert.That(taken.Contains(p), Is.False, $"seed {seed}: reserved page {p} was also handed out");
                    }

                    taken.AddRange(Enumerable.Range(0, reservePages).Select(p => first + p));
                }
            }

            var usedBefore = Enumerable.Range(2, (int)pageCount - 2).Select(p => (long)p).Where(p => !free.Contains(p) && !pending.Values.Any(l => l.Contains(p))).ToList();
            var toFree = usedBefore.Where(_ => random.Next(3) == 0).ToList();
            foreach (long page in toFree)
            {
                freelist.Free(txid, page, 1);
            }

            if (random.Next(4) == 0)
            {
                freelist.Rollback(txid);
                Assert.That(freelist.Snapshot(), Is.EqualTo(free.Concat(pending.Values.SelectMany(l => l)).Order().ToList()), $"seed {seed}: rollback");
                continue;
            }

            freelist.CommitTransaction();
            foreach (long page in taken)
            {
                free.Remove(page);
            }

            if (toFree.Count > 0)
            {
                pending[txid] = toFree;
            }

            pageCount = count;
            Assert.That(freelist.Snapshot(), Is.EqualTo(free.Concat(pending.Values.SelectMany(l => l)).Order().ToList()), $"seed {seed}: commit {txid}");
        }
    }

    private static IEnumerable<int> ModelSeeds() => Seeds(1, Soak ? 40 : 4);

    /// <summary>Moves pages the list released from the model's pending sets to its free set (the list's snapshot says which).</summary>
    private static void SyncModel(Freelist freelist, SortedSet<long> free, SortedDictionary<long, List<long>> pending)
    {
        long pendingInList = freelist.PendingCount;
        while (pending.Count > 0 && pending.Values.Sum(l => l.Count) > pendingInList)
        {
            var oldest = pending.First();
            pending.Remove(oldest.Key);
            free.UnionWith(oldest.Value);
        }

        Assert.That(freelist.FreeCount, Is.EqualTo(free.Count));
    }

    private static Freelist Loaded(params long[] ids)
    {
        var freelist = new Freelist();
        freelist.Load(ids);
        return freelist;
    }
}
