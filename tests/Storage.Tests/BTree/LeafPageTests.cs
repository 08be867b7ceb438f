using System.Buffers.Binary;
using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// In-place editing of page-mode leaves (<see cref="LeafPage"/>) against a sorted model, and the
/// tree behaviours that rest on it: values handed out stay valid while the leaf changes, and a
/// leaf moves to entry mode for replacements, deletes, overflow values and splits.
/// </summary>
public class LeafPageTests
{
    [TestCaseSource(nameof(InsertSeeds))]
    public void InsertsInPlaceMatchAModelUntilThePageIsFull(int seed)
    {
        var random = new Random(seed);
        int pageSize = random.Next(2) == 0 ? 1024 : 4096;
        var page = new byte[pageSize];
        LeafPage.InitEmpty(page, out int dataStart);
        var model = NewModel();
        while (true)
        {
            var key = RandomBytes(random, 1, 24);
            if (model.ContainsKey(key))
            {
                continue;
            }

            var value = RandomBytes(random, 0, 80);
            int index = PageFormat.LeafLowerBound(page, key, out bool exact);
            Assert.That(exact, Is.False);
            int free = LeafPage.FreeBytes(page, dataStart);
            var before = page.AsSpan(dataStart).ToArray();
            int oldStart = dataStart;
            bool inserted = LeafPage.TryInsert(page, ref dataStart, index, key, value);
            Assert.That(inserted, Is.EqualTo(LeafPage.InlineEntrySizeBytes(key.Length, value.Length) <= free));
            Assert.That(page.AsSpan(oldStart).ToArray(), Is.EqualTo(before), "entry bytes already on the page never move");
            if (!inserted)
            {
                Assert.That(dataStart, Is.EqualTo(oldStart));
                break;
            }

            model.Add(key, value);
            Assert.That(LeafPage.FreeBytes(page, dataStart), Is.EqualTo(free - LeafPage.InlineEntrySizeBytes(key.Length, value.Length)));
            AssertPageHolds(page, dataStart, model);
        }

        Assert.That(model.Count, Is.GreaterThan(4));
    }

    [TestCaseSource(nameof(InsertSeeds))]
    public void OpeningAPackedPageMovesItsEntriesToTheEndAndKeepsThem(int seed)
    {
        var random = new Random(seed);
        var model = NewModel();
        while (model.Count < 12)
        {
            model[RandomBytes(random, 1, 16)] = RandomBytes(random, 0, 40);
        }

        var committed = BuildPackedLeaf(1024, model, overflowKey: model.Keys.ElementAt(random.Next(model.Count)));
        var buffer = new byte[1024];
        Array.Fill(buffer, (byte)0xEE); // whatever a recycled buffer held
        Assert.That(LeafPage.TryOpen(committed, buffer, out int dataStart), Is.True);
        Assert.That(PageFormat.Count(buffer), Is.EqualTo(model.Count));
        Assert.That(dataStart + PackedDataBytes(model), Is.EqualTo(1024), "entries end at the page end");
        for (int i = 0; i < model.Count; i++)
        {
            PageFormat.LeafValue(committed, i, out int oldOffset, out int oldLength, out bool oldOverflow);
            PageFormat.LeafValue(buffer, i, out int newOffset, out int newLength, out bool newOverflow);
            Assert.That(PageFormat.LeafKey(buffer, i).ToArray(), Is.EqualTo(PageFormat.LeafKey(committed, i).ToArray()));
            Assert.That((newLength, newOverflow), Is.EqualTo((oldLength, oldOverflow)));
            int stored = oldOverflow ? sizeof(long) : oldLength;
            Assert.That(buffer.AsSpan(newOffset, stored).ToArray(), Is.EqualTo(committed.AsSpan(oldOffset, stored).ToArray()));
        }

        // Then it takes inserts in place like any page-mode leaf.
        var extra = new byte[] { 0x00 };
        if (!model.ContainsKey(extra))
        {
            int index = PageFormat.LeafLowerBound(buffer, extra, out _);
            Assert.That(LeafPage.TryInsert(buffer, ref dataStart, index, extra, "x"u8), Is.True);
            Assert.That(PageFormat.LeafKey(buffer, 0).ToArray(), Is.EqualTo(extra));
            Assert.That(PageFormat.Count(buffer), Is.EqualTo(model.Count + 1));
        }
    }

    [Test]
    public void OpeningRefusesEntriesThatAreNotOneBlock()
    {
        var model = NewModel();
        model["a"u8.ToArray()] = "1"u8.ToArray();
        model["b"u8.ToArray()] = "2"u8.ToArray();
        var committed = BuildPackedLeaf(1024, model, overflowKey: null);
        // Move the second entry 16 bytes further: a gap between the entries.
        int offset = PageFormat.EntryOffset(committed, 1);
        committed.AsSpan(offset, 10).CopyTo(committed.AsSpan(offset + 16));
        BinaryPrimitives.WriteUInt16LittleEndian(committed.AsSpan(PageHeader.SizeOf + 2), (ushort)(offset + 16));
        Assert.That(LeafPage.TryOpen(committed, new byte[1024], out _), Is.False);
    }

    [Test]
    public void ValuesHandedOutStayValidWhileTheLeafTakesMoreInsertsAndSplits()
    {
        using var db = BTreeDatabase.Open(NewDisk(3), DatabasePath, SmallPages);
        using (var tx = db.BeginWrite())
        {
            var b = tx.CreateBucket("b");
            for (int i = 0; i < 40; i += 2)
            {
                b.Put(Key(i), Value(i));
            }

            tx.Commit();
        }

        using (var tx = db.BeginWrite())
        {
            var b = tx.OpenBucket("b")!;
            Assert.That(b.TryGet(Key(10), out var held), Is.True);
            for (int i = 1; i < 400; i += 2)
            {
                b.Put(Key(i), Value(i)); // in place, then full: entry mode and a split at commit
            }

            Assert.That(held.ToArray(), Is.EqualTo(Value(10)));
            b.Put(Key(10), "replaced"u8);               // a replacement in entry mode
            Assert.That(held.ToArray(), Is.EqualTo(Value(10)));
            Assert.That(b.Delete(Key(12)), Is.True);
            tx.Commit();
        }

        db.Check();
        using var read = db.BeginRead();
        var bucket = read.OpenBucket("b")!;
        Assert.That(bucket.Get(Key(10)), Is.EqualTo("replaced"u8.ToArray()));
        Assert.That(bucket.Get(Key(12)), Is.Null);
        Assert.That(bucket.Get(Key(399)), Is.EqualTo(Value(399)));
        Assert.That(bucket.Count, Is.EqualTo(20 + 200 - 1));
    }

    [TestCaseSource(nameof(InsertSeeds))]
    public void MixedChangesInOneTransactionMatchAModel(int seed)
    {
        // Each transaction mixes in-place inserts with the changes that need entry mode
        // (replacements, deletes, overflow values), on leaves first opened in page mode.
        var random = new Random(seed);
        using var db = BTreeDatabase.Open(NewDisk(seed), DatabasePath, SmallPages);
        var model = NewModel();
        for (int round = 0; round < 12; round++)
        {
            using (var tx = db.BeginWrite())
            {
                var b = tx.CreateBucketIfNotExists("b");
                for (int op = 0; op < 60; op++)
                {
                    var key = Key(random.Next(300));
                    int kind = random.Next(10);
                    if (kind < 6)
                    {
                        var value = RandomBytes(random, 0, 40);
                        b.Put(key, value);
                        model[key] = value;
                    }
                    else if (kind < 7)
                    {
                        var value = RandomBytes(random, 300, 600); // an overflow value on 1 KiB pages
                        b.Put(key, value);
                        model[key] = value;
                    }
                    else
                    {
                        Assert.That(b.Delete(key), Is.EqualTo(model.Remove(key)));
                    }

                    if (model.Count > 0 && random.Next(4) == 0)
                    {
                        var probe = model.Keys.ElementAt(random.Next(model.Count));
                        Assert.That(b.Get(probe), Is.EqualTo(model[probe]));
                    }
                }

                tx.Commit();
            }

            db.Check();
            var all = ReadAll(db);
            Assert.That(all["b"], Is.EqualTo(model));
        }
    }

    private static IEnumerable<int> InsertSeeds() => Seeds(1, Soak ? 200 : 20);

    private static byte[] Key(int i)
    {
        var key = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(key, i);
        return key;
    }

    private static byte[] Value(int i) => System.Text.Encoding.ASCII.GetBytes($"value-{i}");

    private static byte[] RandomBytes(Random random, int min, int max)
    {
        var bytes = new byte[random.Next(min, max + 1)];
        random.NextBytes(bytes);
        return bytes;
    }

    private static int PackedDataBytes(SortedDictionary<byte[], byte[]> model) =>
        model.Sum(e => LeafEntryHeader.SizeOf + e.Key.Length + e.Value.Length);

    /// <summary>A leaf laid out as the entry-mode writer does: slots, then the entries packed in key order.</summary>
    private static byte[] BuildPackedLeaf(int pageSize, SortedDictionary<byte[], byte[]> model, byte[]? overflowKey)
    {
        var page = new byte[pageSize];
        PageHeader.Of(page).Kind = PageKind.Leaf;
        PageHeader.Of(page).Count = (ushort)model.Count;
        int slot = PageHeader.SizeOf;
        int data = PageHeader.SizeOf + (model.Count * PageFormat.SlotSizeBytes);
        foreach (var (key, value) in model.ToList())
        {
            bool overflow = overflowKey is not null && key.AsSpan().SequenceEqual(overflowKey) && value.Length >= sizeof(long);
            BinaryPrimitives.WriteUInt16LittleEndian(page.AsSpan(slot), (ushort)data);
            slot += 2;
            BinaryPrimitives.WriteUInt16LittleEndian(page.AsSpan(data), (ushort)key.Length);
            page[data + 2] = overflow ? LeafEntryHeader.OverflowFlag : (byte)0;
            // An overflow entry stores an 8-byte page id; its value length is the run's.
            BinaryPrimitives.WriteInt32LittleEndian(page.AsSpan(data + 4), overflow ? 5000 : value.Length);
            key.CopyTo(page, data + LeafEntryHeader.SizeOf);
            int stored = overflow ? sizeof(long) : value.Length;
            value.AsSpan(0, stored).CopyTo(page.AsSpan(data + LeafEntryHeader.SizeOf + key.Length));
            if (overflow)
            {
                model[key] = value[..sizeof(long)];
            }

            data += LeafEntryHeader.SizeOf + key.Length + stored;
        }

        return page;
    }

    private static void AssertPageHolds(byte[] page, int dataStart, SortedDictionary<byte[], byte[]> model)
    {
        Assert.That(PageFormat.Count(page), Is.EqualTo(model.Count));
        int i = 0;
        foreach (var (key, value) in model)
        {
            Assert.That(PageFormat.LeafKey(page, i).ToArray(), Is.EqualTo(key));
            PageFormat.LeafValue(page, i, out int offset, out int length, out bool overflow);
            Assert.That(overflow, Is.False);
            Assert.That(page.AsSpan(offset, length).ToArray(), Is.EqualTo(value));
            Assert.That(PageFormat.EntryOffset(page, i), Is.GreaterThanOrEqualTo(dataStart));
            i++;
        }

        int slotsEnd = PageHeader.SizeOf + (model.Count * PageFormat.SlotSizeBytes);
        Assert.That(page.AsSpan(slotsEnd, dataStart - slotsEnd).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the gap is zero");
    }
}
