using EmbeddedRaft.Storage.BTree;
using static EmbeddedRaft.Storage.Tests.BTree.BTreeTestSupport;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>
/// A read transaction written to a stream as a B+tree image and restored into a new file gives an
/// equal database; a damaged, truncated or hostile stream never leaves a database behind.
/// </summary>
public class ImageTests
{
    private const string RestoredPath = "/restored/tree.db";

    [TestCaseSource(nameof(Seeds), new object[] { 40, 4 })]
    public async Task AnImageRestoresAnEqualDatabaseThatPassesCheck(int seed)
    {
        TestContext.Out.WriteLine($"replay with BTREE_SEED={seed}");
        var fs = NewDisk(seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        FillRandomly(db, new Random(seed), commits: 20);

        using var image = new MemoryStream();
        long written;
        using (var tx = db.BeginRead())
        {
            written = await tx.WriteImageAsync(image);
        }

        image.Position = 0;
        var summary = await BTreeDatabase.RestoreImageAsync(fs, RestoredPath, image, SmallPages);
        using var restored = BTreeDatabase.Open(fs, RestoredPath, SmallPages);

        var expected = ReadAll(db);
        Assert.That(Difference(expected, ReadAll(restored)), Is.Null);
        restored.Check();
        Assert.That(summary.SizeBytes, Is.EqualTo(written).And.EqualTo(image.Length));
        Assert.That(summary.BucketCount, Is.EqualTo(expected.Count));
        Assert.That(summary.EntryCount, Is.EqualTo(expected.Values.Sum(b => b.Count)));
        Assert.That(fs.FileExists(RestoredPath + ".restoring"), Is.False, "the side file is renamed into place");
    }

    [Test]
    public async Task AReadTransactionsImageIsItsSnapshotWhileTheWriterGoesOn()
    {
        var fs = NewDisk(5);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        FillRandomly(db, new Random(5), commits: 5);
        using var reader = db.BeginRead();
        var seen = ReadAll(reader);

        // The writer rewrites and deletes while the image is being written, one commit per flush.
        using var image = new InterleavingStream(() =>
        {
            using var tx = db.BeginWrite();
            var bucket = tx.CreateBucketIfNotExists("a");
            bucket.Put([1, 2, 3], new byte[200]);
            tx.DeleteBucket("b");
            tx.Commit(CommitDurability.NoSync);
        });
        await reader.WriteImageAsync(image);

        image.Position = 0;
        await BTreeDatabase.RestoreImageAsync(fs, RestoredPath, image, SmallPages);
        using var restored = BTreeDatabase.Open(fs, RestoredPath, SmallPages);
        Assert.That(image.Interleaved, Is.GreaterThan(0), "the writer must really have committed during the write");
        Assert.That(Difference(seen, ReadAll(restored)), Is.Null);
    }

    [Test]
    public async Task AnEmptyDatabaseMakesAnEmptyImage()
    {
        var fs = NewDisk(1);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        using var image = new MemoryStream();
        using (var tx = db.BeginRead())
        {
            await tx.WriteImageAsync(image);
        }

        image.Position = 0;
        var summary = await BTreeDatabase.RestoreImageAsync(fs, RestoredPath, image, SmallPages);
        using var restored = BTreeDatabase.Open(fs, RestoredPath, SmallPages);
        Assert.That(summary.EntryCount, Is.Zero);
        Assert.That(ReadAll(restored), Is.Empty);
    }

    [Test]
    public async Task ValuesLargerThanTheBufferStreamThroughInPieces()
    {
        var fs = NewDisk(2);
        var options = new BTreeOptions { PageSizeBytes = 4096, MaxValueSizeBytes = 1 << 20 };
        using var db = BTreeDatabase.Open(fs, DatabasePath, options);
        var random = new Random(2);
        using (var tx = db.BeginWrite())
        {
            var bucket = tx.CreateBucket("big");
            for (int i = 0; i < 4; i++)
            {
                bucket.Put([(byte)i], RandomBytes(random, 300_000));
            }

            tx.Commit();
        }

        using var image = new MemoryStream();
        using (var tx = db.BeginRead())
        {
            await tx.WriteImageAsync(image);
        }

        image.Position = 0;
        await BTreeDatabase.RestoreImageAsync(fs, RestoredPath, new TrickleStream(image, 1000), options);
        using var restored = BTreeDatabase.Open(fs, RestoredPath, options);
        Assert.That(Difference(ReadAll(db), ReadAll(restored)), Is.Null);
    }

    [TestCaseSource(nameof(Seeds), new object[] { 60, 3 })]
    public async Task AnyFlippedByteOrTruncationIsRefusedAndLeavesNoFile(int seed)
    {
        TestContext.Out.WriteLine($"replay with BTREE_SEED={seed}");
        var fs = NewDisk(seed);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        var random = new Random(seed);
        FillRandomly(db, random, commits: 3);
        using var image = new MemoryStream();
        using (var tx = db.BeginRead())
        {
            await tx.WriteImageAsync(image);
        }

        byte[] good = image.ToArray();
        for (int trial = 0; trial < 40; trial++)
        {
            byte[] bad;
            string damage;
            if (trial % 4 == 0)
            {
                int length = random.Next(good.Length);
                bad = good[..length];
                damage = $"truncated to {length} of {good.Length} bytes";
            }
            else
            {
                bad = (byte[])good.Clone();
                int offset = random.Next(bad.Length);
                bad[offset] ^= (byte)(1 << random.Next(8));
                damage = $"bit flipped at offset {offset}";
            }

            var error = Assert.ThrowsAsync<InvalidDataException>(
                () => BTreeDatabase.RestoreImageAsync(fs, RestoredPath, new MemoryStream(bad), SmallPages), damage);
            Assert.That(error!.Message, Does.Contain("stream offset"), damage);
            Assert.That(fs.FileExists(RestoredPath), Is.False, damage);
            Assert.That(fs.FileExists(RestoredPath + ".restoring"), Is.False, damage);
        }
    }

    [Test]
    public async Task AKeyTooLongForTheDestinationIsRefusedNamingTheLimit()
    {
        var fs = NewDisk(3);
        using var db = BTreeDatabase.Open(fs, DatabasePath, new BTreeOptions { PageSizeBytes = 4096 });
        using (var tx = db.BeginWrite())
        {
            tx.CreateBucket("k").Put(new byte[300], [1]);
            tx.Commit();
        }

        using var image = new MemoryStream();
        using (var tx = db.BeginRead())
        {
            await tx.WriteImageAsync(image);
        }

        image.Position = 0;
        var error = Assert.ThrowsAsync<InvalidDataException>(() => BTreeDatabase.RestoreImageAsync(fs, RestoredPath, image, SmallPages));
        Assert.That(error!.Message, Does.Contain("MaxKeySizeBytes"));
        Assert.That(fs.FileExists(RestoredPath), Is.False);
    }

    [Test]
    public void RestoreRefusesAnExistingFileAndANonImage()
    {
        var fs = NewDisk(4);
        BTreeDatabase.Open(fs, DatabasePath, SmallPages).Dispose();
        Assert.ThrowsAsync<IOException>(() => BTreeDatabase.RestoreImageAsync(fs, DatabasePath, new MemoryStream(new byte[64]), SmallPages));
        var error = Assert.ThrowsAsync<InvalidDataException>(() => BTreeDatabase.RestoreImageAsync(fs, RestoredPath, new MemoryStream(new byte[64]), SmallPages));
        Assert.That(error!.Message, Does.Contain("magic"));
    }

    [Test]
    public async Task ACancelledRestoreRemovesItsSideFile()
    {
        var fs = NewDisk(6);
        using var db = BTreeDatabase.Open(fs, DatabasePath, SmallPages);
        FillRandomly(db, new Random(6), commits: 3);
        using var image = new MemoryStream();
        using (var tx = db.BeginRead())
        {
            await tx.WriteImageAsync(image);
        }

        image.Position = 0;
        using var cancellation = new CancellationTokenSource();
        var cancelling = new TrickleStream(image, 100) { AfterRead = cancellation.Cancel };
        Assert.CatchAsync<OperationCanceledException>(() => BTreeDatabase.RestoreImageAsync(fs, RestoredPath, cancelling, SmallPages, cancellation.Token));
        Assert.That(fs.FileExists(RestoredPath), Is.False);
        Assert.That(fs.FileExists(RestoredPath + ".restoring"), Is.False);
    }

    private static IEnumerable<int> Seeds(int first, int count) => BTreeTestSupport.Seeds(first, Soak ? count * 25 : count);

    private static void FillRandomly(BTreeDatabase db, Random random, int commits)
    {
        string[] buckets = ["a", "b", "c", "\u00e9t\u00e9"];
        for (int c = 0; c < commits; c++)
        {
            using var tx = db.BeginWrite();
            for (int i = 0; i < 200; i++)
            {
                var bucket = tx.CreateBucketIfNotExists(buckets[random.Next(buckets.Length)]);
                var key = RandomBytes(random, random.Next(1, 40));
                if (random.Next(5) == 0)
                {
                    bucket.Delete(key);
                    continue;
                }

                bucket.Put(key, RandomBytes(random, random.Next(20) == 0 ? 5000 : random.Next(0, 120)));
            }

            tx.Commit();
        }
    }

    /// <summary>A memory stream that runs an action at every write (the writer committing meanwhile).</summary>
    private sealed class InterleavingStream(Action onWrite) : MemoryStream
    {
        public int Interleaved { get; private set; }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await base.WriteAsync(buffer, cancellationToken);
            onWrite();
            Interleaved++;
        }
    }

    /// <summary>Hands out at most a few bytes per read, as a network stream may.</summary>
    private sealed class TrickleStream(Stream inner, int maxBytesPerRead) : Stream
    {
        public Action? AfterRead { get; init; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int read = inner.Read(buffer[..Math.Min(buffer.Length, maxBytesPerRead)]);
            AfterRead?.Invoke();
            return read;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return ValueTask.FromResult(Read(buffer.Span));
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
