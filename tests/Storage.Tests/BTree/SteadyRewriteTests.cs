using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// Rewriting a fixed live set commit after commit keeps the file within the bound docs/btree.md
/// states (<i>Where pages go</i>): at most 8/7 of the pages live in the previous commit and in this
/// one, plus one page, plus five times the freelist run's largest length. Reproduce with
/// BTREE_SEED=N; BTREE_SOAK=1 runs a larger live set for more commits.
/// </summary>
public class SteadyRewriteTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (int pageSizeBytes in new[] { 1024, 2048, 4096, 16384 })
        {
            foreach (int seed in Seeds(900, Soak ? 2 : 1))
            {
                yield return new TestCaseData(pageSizeBytes, seed);
            }
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void RewritingAFixedLiveSetKeepsTheFileWithinTheStatedBound(int pageSizeBytes, int seed)
    {
        TestContext.Out.WriteLine($"page size {pageSizeBytes}, seed {seed} (reproduce with BTREE_SEED={seed})");
        int liveKeys = Soak ? 10_000 : 2_400;
        int commits = Soak ? 10_000 : 2_000;
        int keysPerCommit = liveKeys / 60;

        // Values stay inline (the bound is about single pages and the freelist run; overflow runs
        // can fragment like any allocator's variable-size blocks) but grow with the page (up to 1,000 bytes), so that
        // every page size has a live set of several hundred pages; they vary in size so that leaves
        // split and pages are freed all over the file.
        int maxValueBytes = Math.Min(1_000, ((pageSizeBytes - PageHeader.SizeOf) / 4) - 32);
        var random = new Random(seed);
        var fs = NewDisk(seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = pageSizeBytes, MaxKeySizeBytes = 16 });

        // Keys spread over the key space, so rewrites land in every leaf.
        static byte[] Key(int i) => BitConverter.GetBytes(unchecked((ulong)i * 0x9E3779B97F4A7C15UL));
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("live");
            for (int i = 0; i < liveKeys; i++)
            {
                bucket.Put(Key(i), RandomBytes(random, random.Next(1, maxValueBytes)));
            }

            tx.Commit();
        }

        var (_, previousLive, _) = Pages(db);
        double singlePageBound = 0;
        int largestFreelistPages = 0;
        double worstFileToLive = 0;
        for (int c = 0; c < commits; c++)
        {
            using (var tx = db.BeginWrite())
            {
                var bucket = tx.OpenBucket("live")!;
                for (int k = 0; k < keysPerCommit; k++)
                {
                    bucket.Put(Key(random.Next(liveKeys)), RandomBytes(random, random.Next(1, maxValueBytes)));
                }

                tx.Commit();
            }

            var (file, live, freelistPages) = Pages(db);
            singlePageBound = Math.Max(singlePageBound, (previousLive + live) / (1 - Freelist.MaxFreeFractionBeforeLonePages));
            largestFreelistPages = Math.Max(largestFreelistPages, freelistPages);
            double bound = singlePageBound + 1 + (5 * largestFreelistPages);
            Assert.That(file, Is.LessThanOrEqualTo(bound),
                $"commit {c}: {file} pages, {live} live (previous commit {previousLive}), freelist run {freelistPages} pages; reproduce with BTREE_SEED={seed}");
            worstFileToLive = Math.Max(worstFileToLive, (double)file / live);
            previousLive = live;
        }

        var (finalFile, finalLive, finalFreelist) = Pages(db);
        TestContext.Out.WriteLine(
            $"{commits} commits of {keysPerCommit} rewrites over {liveKeys} keys: file {finalFile} pages, live {finalLive}, freelist run {finalFreelist}; worst file/live {worstFileToLive:F2}");
        Assert.That(db.Check().EntryCount, Is.EqualTo(liveKeys));
    }

    /// <summary>The file's pages, those reachable from the latest commit (meta pages and freelist run included), and the freelist run's length.</summary>
    private static (long File, long Live, int FreelistPages) Pages(BTreeDatabase db)
    {
        var stats = db.GetStatistics();
        using var tx = db.BeginRead();
        return (stats.PageCount, stats.PageCount - stats.FreePageCount, tx.Snapshot.FreelistPageCount);
    }
}
