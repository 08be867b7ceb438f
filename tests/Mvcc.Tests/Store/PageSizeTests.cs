using EmbeddedRaft.Mvcc.Store;
using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Store;

/// <summary>
/// The store's B+tree page size: 16 KiB by default, so values of about 1 KiB are stored inline in
/// shared leaves rather than one overflow page each; chosen when the file is created, and an
/// existing file keeps the page size it was created with.
/// </summary>
public sealed class PageSizeTests
{
    private static readonly string s_path = Path.Combine(StoreTestSupport.Directory, StoreLoader.FileName);

    [Test]
    public void ANewStoreWithDefaultOptionsStoresOneKiBValuesInlineInSixteenKiBPages()
    {
        var fs = new FaultInjectingFileSystem(1);
        var value = new string('v', 1024);
        using (var store = OpenOn(fs))
        {
            for (int i = 0; i < 64; i++)
            {
                store.Put($"key-{i:D3}", value);
            }
        }

        using var db = BTreeDatabase.Open(fs, s_path, new BTreeOptions { PageSizeBytes = MvccStoreOptions.DefaultBTreePageSizeBytes });
        var statistics = db.GetStatistics();
        Assert.That(statistics.PageSizeBytes, Is.EqualTo(16 * 1024));

        // 64 values of ~1.1 KiB fill about five leaves; one overflow page per value would be 64 more.
        Assert.That(statistics.UsedPageCount, Is.LessThan(20), $"{statistics.UsedPageCount} pages in use for 64 one-KiB values: they went to overflow pages");
    }

    [Test]
    public void AStoreCreatedWithFourKiBPagesReopensWithDefaultOptionsAndKeepsItsPagesAndData()
    {
        var fs = new FaultInjectingFileSystem(2);
        var fourKiB = new MvccStoreOptions { BTree = new BTreeOptions { PageSizeBytes = 4096 } };
        using (var store = OpenOn(fs, fourKiB))
        {
            store.Put("a", "1");
            store.Put("b", new string('x', 2000));
        }

        using (var reopened = OpenOn(fs))
        {
            Assert.That(S(reopened.Get("a").Kvs[0].Value), Is.EqualTo("1"));
            Assert.That(reopened.Get("b").Kvs[0].Value.Length, Is.EqualTo(2000));
            reopened.Put("c", "3");
            Assert.That(reopened.Get("c").Header.Revision, Is.EqualTo(4), "revisions continue: 1 is the empty store, a and b took 2 and 3");
        }

        // Still a 4 KiB-page file, and the 4 KiB options open it too.
        using (var strict = BTreeDatabase.Open(fs, s_path, new BTreeOptions { PageSizeBytes = 4096 }))
        {
            Assert.That(strict.GetStatistics().PageSizeBytes, Is.EqualTo(4096));
        }

        using var again = OpenOn(fs, fourKiB);
        Assert.That(S(again.Get("c").Kvs[0].Value), Is.EqualTo("3"));
    }
}
