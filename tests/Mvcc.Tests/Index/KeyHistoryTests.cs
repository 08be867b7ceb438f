using EmbeddedRaft.Mvcc.Index;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Mvcc.Tests.Store.StoreTestSupport;

namespace EmbeddedRaft.Mvcc.Tests.Index;

/// <summary>The key index's generations and their compaction, as etcd's key_index_test.</summary>
public sealed class KeyHistoryTests
{
    /// <summary>put 2, put 4, delete 6 | put 8, put 10, delete 12 | put 14 (etcd's TestKeyIndexCompactAndKeep history, shortened).</summary>
    private static KeyHistory History()
    {
        var history = new KeyHistory([0x66]);
        history.Put(new Revision(2, 0));
        history.Put(new Revision(4, 0));
        history.Tombstone(new Revision(6, 0));
        history.Put(new Revision(8, 0));
        history.Put(new Revision(10, 0));
        history.Tombstone(new Revision(12, 0));
        history.Put(new Revision(14, 0));
        return history;
    }

    [TestCase(1, false, 0, 0, 0)]
    [TestCase(3, true, 2, 2, 1)]
    [TestCase(5, true, 4, 2, 2)]
    [TestCase(6, false, 0, 0, 0)]
    [TestCase(9, true, 8, 8, 1)]
    [TestCase(11, true, 10, 8, 2)]
    [TestCase(13, false, 0, 0, 0)]
    [TestCase(20, true, 14, 14, 1)]
    public void AKeyIsReadAtEachRevisionOfItsGenerations(long at, bool exists, long mod, long created, long version)
    {
        bool found = History().TryGet(at, out var modified, out var createdAt, out long v);
        Assert.That(found, Is.EqualTo(exists));
        if (exists)
        {
            Assert.That((modified.Main, createdAt.Main, v), Is.EqualTo((mod, created, version)));
        }
    }

    [TestCase(1, "2,4,6t|8,10,12t|14", "")]
    [TestCase(4, "4,6t|8,10,12t|14", "4")]
    [TestCase(6, "8,10,12t|14", "")]
    [TestCase(9, "8,10,12t|14", "8")]
    [TestCase(12, "14", "")]
    [TestCase(14, "14", "14")]
    public void CompactionKeepsTheNewestRevisionAtOrBelowAndDropsEndedGenerations(long at, string remaining, string kept)
    {
        var history = History();
        var keep = new HashSet<Revision>();
        var wouldKeep = new HashSet<Revision>();
        history.Keep(at, wouldKeep);
        history.Compact(at, keep);
        Assert.That(Show(history), Is.EqualTo(remaining));
        Assert.That(string.Join(",", keep.Select(r => r.Main)), Is.EqualTo(kept));
        Assert.That(wouldKeep, Is.EquivalentTo(keep), "Keep computes what Compact keeps");
        Assert.That(history.TryGet(20, out var last, out _, out long version) && last.Main == 14 && version == 1, Is.True, "compaction never changes the present");
    }

    [Test]
    public async Task CompactionPrunesDeletedKeysFromTheIndex()
    {
        await using var store = OpenOn(new FaultInjectingFileSystem(1));
        store.Put("gone", "1");
        store.Put("kept", "1");
        store.Delete("gone");
        Assert.That(store.IndexedKeyCount, Is.EqualTo(2));
        store.Compact(store.Revision);
        Assert.That(store.IndexedKeyCount, Is.EqualTo(1));
    }

    private static string Show(KeyHistory history)
    {
        var generations = history.GenerationRevisions();
        return string.Join("|", generations.Select((g, n) => string.Join(",", g.Select((r, i) =>
            i == g.Length - 1 && n != generations.Count - 1 ? $"{r.Main}t" : $"{r.Main}"))).Where(shown => shown.Length > 0));
    }
}
