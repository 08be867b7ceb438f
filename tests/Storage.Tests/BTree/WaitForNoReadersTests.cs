using EmbeddedRaft.Storage.BTree;
using EmbeddedRaft.TestSupport;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// WaitForNoReaders, which an owner uses before it closes the database to replace its file: it
/// returns at once with no reader, waits while any read transaction (of any snapshot) is open, and
/// returns once the last one ends. A wait that must not complete is checked while a reader is
/// provably open; every wait that must complete is bounded.
/// </summary>
public class WaitForNoReadersTests
{
    [Test]
    public void WaitForNoReadersReturnsOnceTheLastReaderOfAnySnapshotEnds()
    {
        using var db = BTreeDatabase.Open(NewDisk(1), DatabasePath, SmallPages);
        db.WaitForNoReaders(); // none open: returns at once

        var first = db.BeginRead();
        using (var writer = db.BeginWrite())
        {
            writer.CreateBucket("b").Put("k"u8, "v"u8);
            writer.Commit();
        }

        var second = db.BeginRead(); // another snapshot
        var waiting = Task.Run(db.WaitForNoReaders);
        first.Dispose();
        Assert.That(waiting.Wait(TimeSpan.FromMilliseconds(50)), Is.False, "a reader of the newer snapshot is still open");
        second.Dispose();
        waiting.WaitOrFail("WaitForNoReaders after the last reader ended");
    }
}
