using System.Buffers.Binary;
using System.Runtime.InteropServices;
using EmbeddedRaft.Storage.IO;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// A crash-safe, copy-on-write B+tree in one file of fixed-size pages, in the family of LMDB and
/// bbolt: named buckets of byte-ordered keys, one writer at a time, any number of concurrent
/// readers each on its own snapshot, durable commits. The on-disk format is in docs/btree.md.
/// </summary>
/// <remarks>
/// <para>Thread-safety: every member is safe to call from any thread. One write transaction at a
/// time: <see cref="BeginWriteAsync"/> (and <see cref="SyncAsync"/>, <see cref="CheckAsync"/>) wait
/// for an open one without blocking a thread and can be cancelled; their synchronous twins
/// (<see cref="BeginWrite"/>, <see cref="Sync"/>, <see cref="Check"/>) block the calling thread, for
/// callers that are not async. <see cref="BeginRead"/> never blocks on the writer, and the writer
/// never waits for readers. Each transaction is used by one thread at a time.</para>
/// <para>Failure: a commit or sync whose write or flush fails throws that failure, and from then on
/// every write (<see cref="BeginWrite"/>, <see cref="Sync"/> and their async twins) throws
/// <see cref="StorageFaultedException"/> with it as <see cref="Exception.InnerException"/>, until the
/// database is disposed and opened again (which recovers exactly what is durable). Reads go on.</para>
/// <para>Crash safety: a commit writes its pages to pages that no durable state references (free
/// pages or the end of the file), flushes them, and only then writes and flushes the meta page that
/// makes them reachable. Two meta pages are written alternately; at open the newest one that passes
/// its checksum wins. A crash at any point leaves the last synced commit (or the one in progress, if
/// its meta page reached the disk) intact.</para>
/// <para>All IO goes through <see cref="IFileSystem"/>. A lock file (<c>path + ".lock"</c>) keeps a
/// second writer, in this process or another, from opening the same file.</para>
/// </remarks>
public sealed class BTreeDatabase : IDisposable, IAsyncDisposable
{
    /// <summary>Bytes a commit writes between two requests to start write-back (see <see cref="WriteDirtyPages"/>).</summary>
    private const long WriteBackChunkBytes = 256 * 1024;

    private readonly IStorageFile _file;
    private readonly IDisposable _lock;
    private readonly PageCache _cache;
    private readonly SemaphoreSlim _writerGate = new(1, 1);
    private readonly object _readerGate = new();
    private readonly Dictionary<long, int> _readersBySnapshot = [];
    private MetaState _meta = null!;
    private long _durableTxid;
    private int _durableSlot;
    private Exception? _failure;
    private int _disposed;

    /// <summary>True when this open created the file (for <see cref="OpenReport"/>).</summary>
    private readonly bool _created;

    private BTreeDatabase(string path, BTreeOptions options, IStorageFile file, IDisposable fileLock, bool created)
    {
        _created = created;
        Path = path;
        Options = options;
        PageSizeBytes = options.PageSizeBytes;
        _file = file;
        _lock = fileLock;
        _cache = new PageCache(options.PageCacheSizeBytes);
        Pools = new WriterPools(options.PageSizeBytes);
    }

    /// <summary>The path of the database file.</summary>
    public string Path { get; }

    /// <summary>The options the database was opened with; when <see cref="BTreeOptions.AdoptExistingPageSize"/> adopted the file's page size, with that page size.</summary>
    public BTreeOptions Options { get; }

    /// <summary>
    /// What the open found: the meta page and commit used, a damaged meta page (the open may then
    /// have fallen back one commit), a rebuilt freelist. Check <see cref="BTreeOpenReport.FoundDamage"/>
    /// after opening; the same is logged as a warning through <see cref="BTreeOptions.Logger"/>.
    /// </summary>
    public BTreeOpenReport OpenReport { get; private set; } = null!;

    internal int PageSizeBytes { get; }

    internal Freelist Freelist { get; } = new();

    /// <summary>Buffers the writer recycles; only touched while holding the writer gate.</summary>
    internal WriterPools Pools { get; }

    internal bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>
    /// Opens the database at <paramref name="path"/>, creating it (atomically, and durably: the
    /// directory is synced) when the file does not exist, and its directory when that is missing.
    /// </summary>
    /// <remarks>
    /// Damage the open can work around does not fail it, and is reported in <see cref="OpenReport"/>
    /// (and logged through <see cref="BTreeOptions.Logger"/>): a damaged meta page (the other one is
    /// used, which may be the previous commit) and a damaged freelist (rebuilt from the pages the
    /// trees reach, then written by a synced commit made during the open).
    /// </remarks>
    /// <exception cref="ArgumentException">The options are inconsistent, or the file was created with
    /// another page size (named in the message, also when meta page 0 is damaged and only meta page 1 says it).</exception>
    /// <exception cref="StorageLockedException">Another open instance holds the file.</exception>
    /// <exception cref="CorruptionException">Neither meta page is valid, or the freelist is damaged and
    /// a tree page it would be rebuilt from is damaged too.</exception>
    /// <exception cref="IOException">The file system failed.</exception>
    public static BTreeDatabase Open(IFileSystem fileSystem, string path, BTreeOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= BTreeOptions.Default;
        options.Validate();
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The B+tree file format is little-endian and is only implemented for little-endian machines.");
        }

        // Like the WAL and the snapshotter, a missing directory is created (and its parent synced, so
        // that the directory, like the file created in it, survives a crash).
        string? directory = System.IO.Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory) && !fileSystem.DirectoryExists(directory))
        {
            fileSystem.CreateDirectory(directory);
            string? parent = System.IO.Path.GetDirectoryName(directory);
            if (!string.IsNullOrEmpty(parent))
            {
                fileSystem.SyncDirectory(parent);
            }
        }

        var fileLock = fileSystem.AcquireExclusiveLock(path + ".lock");
        IStorageFile? file = null;
        try
        {
            bool created = false;
            if (!fileSystem.FileExists(path))
            {
                CreateFile(fileSystem, path, options.PageSizeBytes);
                created = true;
            }

            file = fileSystem.Open(path, FileOpenMode.OpenExisting);
            if (!created && options.AdoptExistingPageSize && FindPageSize(file) is { } existing && existing != options.PageSizeBytes)
            {
                options = options with { PageSizeBytes = existing };
                options.Validate();
            }

            var database = new BTreeDatabase(path, options, file, fileLock, created);
            database.Load();
            return database;
        }
        catch
        {
            file?.Dispose();
            fileLock.Dispose();
            throw;
        }
    }

    /// <summary>Read transactions' last catalog lookup (see <see cref="CatalogRecordCache"/>); read and written with <see cref="Volatile"/>.</summary>
    internal CatalogRecordCache? LastReadBucket;

    /// <summary>
    /// Begins a read transaction on the latest commit. Never blocks and is never blocked by the writer.
    /// Dispose it promptly: its snapshot's pages cannot be reused while it is open.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    public Transaction BeginRead()
    {
        ThrowIfDisposed();
        MetaState meta;
        lock (_readerGate)
        {
            meta = _meta;
            CollectionsMarshal.GetValueRefOrAddDefault(_readersBySnapshot, meta.Txid, out _)++;
        }

        return new Transaction(this, meta, readOnly: true);
    }

    /// <summary>Begins the write transaction, blocking the calling thread while another one is open.</summary>
    /// <remarks>Async callers use <see cref="BeginWriteAsync"/>, which waits without blocking a thread and can be cancelled.</remarks>
    /// <exception cref="ObjectDisposedException">The database is disposed (also when it is disposed while this waits).</exception>
    /// <exception cref="StorageFaultedException">An earlier commit or sync failed to write or flush; dispose and reopen the database.</exception>
    public Transaction BeginWrite()
    {
        ThrowIfDisposed();
        _writerGate.Wait();
        return BeginWriteHoldingGate();
    }

    /// <summary>
    /// Begins the write transaction, waiting asynchronously while another one is open (it gets the
    /// gate when that one commits or is disposed). Cancelling the wait leaves the database as it was.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the gate was taken.</exception>
    /// <exception cref="ObjectDisposedException">The database is disposed (also when it is disposed while this waits).</exception>
    /// <exception cref="StorageFaultedException">An earlier commit or sync failed to write or flush; dispose and reopen the database.</exception>
    public async ValueTask<Transaction> BeginWriteAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await SchedulerWaits.EnterAsync(_writerGate, cancellationToken).ConfigureAwait(false);
        return BeginWriteHoldingGate();
    }

    /// <summary>The part of beginning a write after the gate is taken; releases the gate if it throws.</summary>
    private Transaction BeginWriteHoldingGate()
    {
        try
        {
            ThrowIfDisposed();
            ThrowIfFailed();

            // A page freed by transaction F may be reused once no reader's snapshot predates F and
            // F is durable (a crash falls back to the durable meta page, which may still reach it).
            Freelist.Release(Math.Min(OldestReaderSnapshot(), _durableTxid));
            Freelist.BeginTransaction(FreelistReservePages(_meta));
            return new Transaction(this, _meta, readOnly: false);
        }
        catch
        {
            _writerGate.Release();
            throw;
        }
    }

    /// <summary>Makes every commit made with <see cref="CommitDurability.NoSync"/> durable, blocking the calling thread while a writer is open.</summary>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    /// <exception cref="IOException">Writing or flushing failed; the database then refuses writes until reopened.</exception>
    /// <exception cref="StorageFaultedException">An earlier commit or sync failed; dispose and reopen the database.</exception>
    public void Sync()
    {
        ThrowIfDisposed();
        _writerGate.Wait();
        SyncHoldingGate();
    }

    /// <summary>
    /// Makes every commit made with <see cref="CommitDurability.NoSync"/> durable, waiting
    /// asynchronously while a writer is open. The flushes themselves run on the calling thread
    /// (<see cref="IStorageFile.Flush"/> is synchronous).
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the gate was taken; nothing was written.</exception>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    /// <exception cref="IOException">Writing or flushing failed; the database then refuses writes until reopened.</exception>
    /// <exception cref="StorageFaultedException">An earlier commit or sync failed; dispose and reopen the database.</exception>
    public async ValueTask SyncAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await SchedulerWaits.EnterAsync(_writerGate, cancellationToken).ConfigureAwait(false);
        SyncHoldingGate();
    }

    private void SyncHoldingGate()
    {
        try
        {
            ThrowIfDisposed();
            ThrowIfFailed();
            SyncUnsynchronized();
        }
        finally
        {
            _writerGate.Release();
        }
    }

    /// <summary>
    /// Verifies the whole file as of the latest commit, reading every page from disk (not the cache):
    /// each page's checksum and id, every page reachable exactly once or free, keys sorted within
    /// pages and within the bounds their parents give, equal leaf depth, bucket counts, overflow runs
    /// and the freelist. Blocks the calling thread while a writer is open, so do not call it from
    /// inside a write transaction.
    /// </summary>
    /// <exception cref="CorruptionException">The first problem found, naming the page by its offset.</exception>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    public CheckReport Check()
    {
        ThrowIfDisposed();
        _writerGate.Wait();
        return CheckHoldingGate();
    }

    /// <summary>
    /// <see cref="Check"/>, waiting asynchronously while a writer is open; the check itself then
    /// runs on the calling thread (its reads are synchronous) and holds the writer gate until done.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before the gate was taken.</exception>
    /// <exception cref="CorruptionException">The first problem found, naming the page by its offset.</exception>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    public async ValueTask<CheckReport> CheckAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await SchedulerWaits.EnterAsync(_writerGate, cancellationToken).ConfigureAwait(false);
        return CheckHoldingGate();
    }

    private CheckReport CheckHoldingGate()
    {
        try
        {
            ThrowIfDisposed();
            return new TreeChecker(this, _meta).Run();
        }
        finally
        {
            _writerGate.Release();
        }
    }

    /// <summary>Figures about the latest commit: pages used and free, depth, counts, file size.</summary>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    public BTreeStatistics GetStatistics()
    {
        using var tx = BeginRead();
        var meta = tx.Snapshot;
        long entries = 0;
        int depth = 0;
        foreach (string name in tx.ListBuckets())
        {
            var tree = tx.OpenBucket(name)!.Tree;
            entries += tree.Count;
            int levels = 0;
            for (long id = tree.RootPageId; id != 0; levels++)
            {
                var page = ReadTreePage(id);
                id = PageFormat.Kind(page) == PageKind.Branch ? PageFormat.BranchChild(page, 0) : 0;
            }

            depth = Math.Max(depth, levels);
        }

        return new BTreeStatistics
        {
            PageSizeBytes = PageSizeBytes,
            PageCount = meta.PageCount,
            FreePageCount = meta.FreePageCount,
            FileSizeBytes = _file.Length,
            TreeDepth = depth,
            BucketCount = meta.BucketCount,
            EntryCount = entries,
            Txid = meta.Txid,
            CachedBytes = _cache.CachedBytes,
        };
    }

    /// <summary>
    /// Copies the latest commit into a new, compact database file at <paramref name="destinationPath"/>:
    /// only live entries, every page full, no free pages to speak of. The source stays open and
    /// usable (compaction reads a snapshot; the writer is not blocked). Replace the file yourself
    /// (close, rename, reopen) if the copy should take the original's place.
    /// </summary>
    /// <exception cref="IOException">The destination exists, or the file system failed.</exception>
    /// <exception cref="ObjectDisposedException">The database is disposed.</exception>
    public void Compact(IFileSystem destinationFileSystem, string destinationPath, BTreeOptions? destinationOptions = null)
    {
        ArgumentNullException.ThrowIfNull(destinationFileSystem);
        ArgumentException.ThrowIfNullOrEmpty(destinationPath);
        if (destinationFileSystem.FileExists(destinationPath))
        {
            throw new IOException($"The compaction destination '{destinationPath}' already exists.");
        }

        const int EntriesPerCommit = 50_000;
        using var source = BeginRead();
        using var destination = Open(destinationFileSystem, destinationPath, destinationOptions ?? Options);
        foreach (string name in source.ListBuckets())
        {
            var cursor = source.OpenBucket(name)!.CreateCursor();
            var tx = destination.BeginWrite();
            try
            {
                var bucket = tx.CreateBucket(name);
                int inBatch = 0;
                for (bool more = cursor.First(); more; more = cursor.Next())
                {
                    // Keys arrive in order, so every insert appends to the rightmost leaf and pages fill completely.
                    bucket.Put(cursor.Key, cursor.Value);
                    if (++inBatch == EntriesPerCommit)
                    {
                        tx.Commit();
                        tx = destination.BeginWrite();
                        bucket = tx.OpenBucket(name)!;
                        inBatch = 0;
                    }
                }

                tx.Commit();
            }
            finally
            {
                tx.Dispose();
            }
        }
    }

    /// <summary>
    /// Creates a new database file at <paramref name="path"/> from a B+tree image written by
    /// <see cref="Transaction.WriteImageAsync"/>, reading the stream once, in bounded memory. The
    /// image is built in a side file (<c>path + ".restoring"</c>) and renamed into place, durably,
    /// only once its end record and checksum check out: a damaged or truncated stream leaves nothing
    /// at <paramref name="path"/>. Open the result with <see cref="Open"/>.
    /// </summary>
    /// <param name="fileSystem">Where to create the database.</param>
    /// <param name="path">The new database file; its directory is created if missing.</param>
    /// <param name="source">The image; read to its end record, not disposed.</param>
    /// <param name="options">Options of the new file (page size, limits); the image's keys and values must fit them.</param>
    /// <param name="cancellationToken">Cancels the restore; the side file is removed.</param>
    /// <returns>What the image held.</returns>
    /// <exception cref="IOException">A file already exists at <paramref name="path"/>, or the file system failed.</exception>
    /// <exception cref="InvalidDataException">The stream is not a whole, valid image, or holds a key or value the options refuse; the message names the stream offset.</exception>
    public static async Task<BTreeImageSummary> RestoreImageAsync(
        IFileSystem fileSystem, string path, Stream source, BTreeOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(source);
        options ??= BTreeOptions.Default;
        options.Validate();
        return await BTreeImage.RestoreAsync(fileSystem, path, source, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Closes the file and releases the lock. When no write transaction is open and no write has
    /// failed, it first makes any <see cref="CommitDurability.NoSync"/> commits durable. When a write
    /// transaction is open it does <b>not</b> wait for it and does not sync: NoSync commits are then
    /// as durable as after a crash (the last synced commit survives, later ones may not), and the
    /// open writer can no longer commit. End the writer (commit or dispose it) first, or call
    /// <see cref="Sync"/>, when NoSync commits must survive. Open transactions become unusable.
    /// Does nothing the second time.
    /// </summary>
    /// <remarks>Why not wait for the writer: the thread disposing may be the one that holds it, and
    /// an abandoned writer would make disposal hang.</remarks>
    /// <exception cref="IOException">The final sync failed (the file is closed anyway).</exception>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        bool haveWriterGate = _writerGate.Wait(0);
        try
        {
            if (haveWriterGate && _failure is null)
            {
                SyncUnsynchronized();
            }
        }
        finally
        {
            _file.Dispose();
            _lock.Dispose();
            if (haveWriterGate)
            {
                _writerGate.Release();
            }
        }
    }

    /// <summary>
    /// <see cref="Dispose"/>, for <c>await using</c>: the same rules (no wait for an open writer);
    /// the final sync, when there is one, runs on the calling thread (<see cref="IStorageFile.Flush"/>
    /// is synchronous) and the returned task is already complete.
    /// </summary>
    /// <exception cref="IOException">The final sync failed (the file is closed anyway).</exception>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }

    // ---------------------------------------------------------------- used by transactions

    internal void EndRead(Transaction tx)
    {
        lock (_readerGate)
        {
            ref int count = ref CollectionsMarshal.GetValueRefOrNullRef(_readersBySnapshot, tx.Id);
            if (!(!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref count)))
            {
                throw new InvariantViolationException("B+tree: a read transaction ended twice.");
            }

            if (--count == 0)
            {
                _readersBySnapshot.Remove(tx.Id);
                if (_readersBySnapshot.Count == 0)
                {
                    // Wakes WaitForNoReaders.
                    Monitor.PulseAll(_readerGate);
                }
            }
        }
    }

    /// <summary>
    /// Blocks the calling thread until no read transaction of this database is open. For an owner
    /// about to dispose the database and replace its file (a store restoring a snapshot): it first
    /// stops its own code from beginning new readers, then waits here for those already reading, so
    /// none of them reads a closed file. Readers begun meanwhile are waited for too.
    /// </summary>
    /// <remarks>Thread-safe. Waits without a bound: a read transaction that is never disposed blocks it for good.</remarks>
    public void WaitForNoReaders()
    {
        lock (_readerGate)
        {
            while (_readersBySnapshot.Count != 0)
            {
                Monitor.Wait(_readerGate);
            }
        }
    }

    internal void EndWrite(Transaction tx, bool committed)
    {
        if (!committed)
        {
            Freelist.Rollback(tx.Id);
        }

        tx.ReturnPooledBuffers();
        _writerGate.Release();
    }

    /// <summary>Writes a write transaction's pages, then (synced) flushes and writes the meta page, then publishes; releases the writer gate.</summary>
    internal void CommitWrite(Transaction tx, long catalogRoot, long bucketCount, CommitDurability durability)
    {
        try
        {
            CommitHoldingGate(tx, catalogRoot, bucketCount, durability);
        }
        finally
        {
            tx.ReturnPooledBuffers();
            _writerGate.Release();
        }
    }

    /// <summary>
    /// The commit itself, the writer gate held (and kept). Only a synced commit writes a freelist run:
    /// a NoSync commit writes no meta page, so no durable meta page could ever name its run (a crash
    /// falls back to the last synced commit, whose run it leaves alone). It keeps naming that run,
    /// and <see cref="MetaState.FreelistWritten"/> false says the run does not list its free pages;
    /// <see cref="SyncUnsynchronized"/> writes them before such a state is made durable. On the
    /// replicated store's apply (a NoSync commit per 100 ms batch, a synced one at each snapshot) this
    /// drops ~85% of the freelist writes: 8 pages of 16 KiB per commit once a compaction has freed
    /// ~16,000 pages (docs/benchmarks.md, "B+tree bytes per replicated put, session 26").
    /// </summary>
    private void CommitHoldingGate(Transaction tx, long catalogRoot, long bucketCount, CommitDurability durability)
    {
        try
        {
            foreach (var (pageId, count) in tx.FreedPages)
            {
                Freelist.Free(tx.Id, pageId, count);
            }

            bool writeFreelist = durability == CommitDurability.Synced;
            long freelistPage = tx.Snapshot.FreelistPage;
            int freelistPages = tx.Snapshot.FreelistPageCount;
            long freePageCount = Freelist.TotalCount;
            if (writeFreelist)
            {
                // Invariant: the run the snapshot names is the one the last synced commit wrote (NoSync
                // commits carry it over unfreed); this commit replaces it, so it frees it.
                if (tx.Snapshot.FreelistPage != 0)
                {
                    Freelist.Free(tx.Id, tx.Snapshot.FreelistPage, tx.Snapshot.FreelistPageCount);
                }

                // The new freelist run is allocated before its contents are taken, so it never lists itself.
                // It goes to the pages set aside for it when they suffice (see Freelist); its length
                // changes only by doubling or quartering, so the run it left two commits ago fits it.
                int neededPages = PageFormat.RunPages(PageFormat.FreelistCountSizeBytes + (Freelist.TotalCount * sizeof(long)), PageSizeBytes);
                freelistPage = Freelist.TryTakeFreelistReserve(neededPages, out freelistPages);
                if (freelistPage < 0)
                {
                    freelistPages = Freelist.RunCapacityPages(neededPages, tx.Snapshot.FreelistPageCount);
                    freelistPage = tx.AllocatePages(freelistPages);
                }

                if (freelistPages < neededPages)
                {
                    throw new InvariantViolationException("B+tree: the freelist run is shorter than its entries need.");
                }

                var freeIds = Freelist.Snapshot();
                tx.AddDirtyPage(freelistPage, BuildFreelistRun(freelistPage, freelistPages, tx.Id, freeIds));
                freePageCount = freeIds.Count;
            }

            WriteDirtyPages(tx.DirtyPages, tx.Id);
            var meta = new MetaState(tx.Id, catalogRoot, bucketCount, freelistPage, freelistPages, tx.PageCount, freePageCount, FreelistWritten: writeFreelist);
            if (durability == CommitDurability.Synced)
            {
                _file.Flush();
                WriteMeta(meta, 1 - _durableSlot);
                _file.Flush();
                _durableSlot = 1 - _durableSlot;
                _durableTxid = meta.Txid;
            }

            foreach (var (pageId, buffer, _) in tx.DirtyPages)
            {
                if (tx.ColdPages.Contains(pageId))
                {
                    // Not worth memory: readers load it on demand. Its buffer serves the next commit.
                    if (_cache.Remove(pageId) is { } stale)
                    {
                        Pools.ReturnReplacedPage(stale);
                    }

                    Pools.ReturnReplacedPage(buffer);
                }
                else if (_cache.Set(pageId, buffer) is { } replaced)
                {
                    Pools.ReturnReplacedPage(replaced);
                }
            }

            Freelist.CommitTransaction();
            lock (_readerGate)
            {
                _meta = meta;
            }
        }
        catch (Exception e)
        {
            // The disk state is unknown (a page or the meta page may or may not have reached it):
            // refuse further writes, so nothing builds on pages a reopen might still find referenced.
            _failure = e;
            Freelist.Rollback(tx.Id);
            throw;
        }
    }

    /// <summary>A branch or leaf page, from the cache or verified from disk.</summary>
    internal byte[] ReadTreePage(long pageId) => CheckTreePage(pageId, TreePageBuffer(pageId));

    /// <summary>The buffer of a branch or leaf page, its contents not yet touched (<see cref="Tree.FindMany"/> prefetches them first); check it with <see cref="CheckTreePage"/> before use.</summary>
    internal byte[] TreePageBuffer(long pageId) => _cache.TryGet(pageId) ?? LoadRun(pageId, cache: true);

    /// <summary>Returns <paramref name="page"/> if it is a branch or leaf page; else the file is corrupt.</summary>
    internal byte[] CheckTreePage(long pageId, byte[] page)
    {
        var kind = PageFormat.Kind(page);
        if (kind != PageKind.Branch && kind != PageKind.Leaf)
        {
            throw Corrupt(pageId, $"expected a branch or leaf page, found kind {(int)kind}");
        }

        return page;
    }

    internal ReadOnlySpan<byte> ReadOverflowValue(long pageId, int length)
    {
        var run = _cache.TryGet(pageId) ?? LoadRun(pageId, cache: true);
        if (PageFormat.Kind(run) != PageKind.Overflow || run.Length < PageHeader.SizeOf + length)
        {
            throw Corrupt(pageId, $"expected an overflow run holding {length} bytes");
        }

        return new ReadOnlySpan<byte>(run, PageHeader.SizeOf, length);
    }

    /// <summary>Reads a page (or a whole run) from disk and verifies its checksum and id.</summary>
    internal byte[] LoadRun(long pageId, bool cache)
    {
        ThrowIfDisposed();
        if (pageId < 2)
        {
            throw Corrupt(pageId, "a tree refers to a meta page");
        }

        var first = PageFormat.NewBuffer(PageSizeBytes);
        if (_file.Read(pageId * PageSizeBytes, first) < PageSizeBytes)
        {
            throw Corrupt(pageId, "the page is past the end of the file");
        }

        var run = first;
        int extraPages = BinaryPrimitives.ReadInt32LittleEndian(first.AsSpan(24));
        if (extraPages != 0)
        {
            if (extraPages < 0 || (pageId + 1 + (long)extraPages) * PageSizeBytes > _file.Length)
            {
                throw Corrupt(pageId, $"a run of {extraPages} further pages does not fit in the file");
            }

            run = PageFormat.NewBuffer((1 + extraPages) * PageSizeBytes);
            first.CopyTo(run, 0);
            if (_file.Read((pageId + 1) * PageSizeBytes, run.AsSpan(PageSizeBytes)) < run.Length - PageSizeBytes)
            {
                throw Corrupt(pageId, "the run is past the end of the file");
            }
        }

        if (!PageFormat.IsSealed(run))
        {
            throw Corrupt(pageId, "checksum mismatch");
        }

        long storedId = BinaryPrimitives.ReadInt64LittleEndian(run.AsSpan(8));
        if (storedId != pageId)
        {
            throw Corrupt(pageId, $"the page says it is page {storedId}");
        }

        if (cache)
        {
            _cache.Set(pageId, run);
        }

        return run;
    }

    internal List<long> FreelistSnapshotForCheck() => Freelist.Snapshot();

    internal CorruptionException Corrupt(long pageId, string reason) =>
        new(Path, pageId * PageSizeBytes, $"page {pageId}: {reason}");

    internal CorruptionException TooDeep(long pageId) => Corrupt(pageId, $"the tree is deeper than {Tree.MaxDepth} levels (a cycle of pages?)");

    internal void ValidateKey(ReadOnlySpan<byte> key)
    {
        if (key.IsEmpty)
        {
            throw new ArgumentException("Keys must not be empty.", nameof(key));
        }

        if (key.Length > Options.MaxKeySizeBytes)
        {
            throw new ArgumentException($"The key is {key.Length} bytes; MaxKeySizeBytes is {Options.MaxKeySizeBytes}.", nameof(key));
        }
    }

    internal void ValidateValue(ReadOnlySpan<byte> value)
    {
        if (value.Length > Options.MaxValueSizeBytes)
        {
            throw new ArgumentException($"The value is {value.Length} bytes; MaxValueSizeBytes is {Options.MaxValueSizeBytes}.", nameof(value));
        }
    }

    // ---------------------------------------------------------------- private

    private static void CreateFile(IFileSystem fileSystem, string path, int pageSizeBytes)
    {
        // Build it under a temporary name and rename it into place, so a crash never leaves a
        // half-written file under the real name; then sync the directory so the name is durable.
        string temporary = path + ".creating";
        fileSystem.DeleteFile(temporary);
        using (var file = fileSystem.Open(temporary, FileOpenMode.CreateNew))
        {
            var pages = new byte[2 * pageSizeBytes];
            var initial = new MetaState(Txid: 0, CatalogRoot: 0, BucketCount: 0, FreelistPage: 0, FreelistPageCount: 0, PageCount: 2, FreePageCount: 0);
            FormatMeta(pages.AsSpan(0, pageSizeBytes), initial, slot: 0, pageSizeBytes);
            FormatMeta(pages.AsSpan(pageSizeBytes), initial, slot: 1, pageSizeBytes);
            file.Write(0, pages);
            file.Flush();
        }

        fileSystem.Rename(temporary, path);
        string? directory = System.IO.Path.GetDirectoryName(path);
        fileSystem.SyncDirectory(string.IsNullOrEmpty(directory) ? "." : directory);
    }

    private void Load()
    {
        var (meta0, damage0) = TryReadMeta(0, PageSizeBytes);
        if (meta0 is { } m0 && m0.PageSizeBytes != PageSizeBytes)
        {
            throw new ArgumentException($"'{Path}' was created with PageSizeBytes {m0.PageSizeBytes}; the options say {PageSizeBytes}.", "options");
        }

        var (meta1, damage1) = TryReadMeta(1, PageSizeBytes);
        if (meta1 is { } m1 && m1.PageSizeBytes != PageSizeBytes)
        {
            throw new ArgumentException($"'{Path}' was created with PageSizeBytes {m1.PageSizeBytes} (meta page 1 says so); the options say {PageSizeBytes}.", "options");
        }
        if (meta0 is null && meta1 is null)
        {
            // With meta page 0 damaged, meta page 1 is looked for where the options' page size puts
            // it; in a file of another page size it is elsewhere, and both pages would be blamed.
            // Look for a valid meta page 1 at every other page size and name the real cause.
            for (int size = 1024; size <= 65536; size *= 2)
            {
                if (size != PageSizeBytes && TryReadMeta(1, size).Body is { } found && found.PageSizeBytes == size)
                {
                    throw new ArgumentException(
                        $"'{Path}' was created with PageSizeBytes {size} (meta page 1, at byte {size}, says so; meta page 0 is damaged: {damage0}); the options say {PageSizeBytes}.",
                        "options");
                }
            }

            throw new CorruptionException(Path, 0, $"neither meta page is valid (page 0: {damage0}; page 1, at byte {PageSizeBytes}: {damage1})");
        }

        MetaBody chosen;
        if (meta0 is { } a && (meta1 is not { } b || a.Txid >= b.Txid))
        {
            chosen = a;
            _durableSlot = 0;
        }
        else
        {
            chosen = meta1!.Value;
            _durableSlot = 1;
        }

        long metaOffset = _durableSlot * (long)PageSizeBytes;
        if (chosen.PageCount < 2 || chosen.CatalogRoot < 0 || chosen.CatalogRoot >= chosen.PageCount
            || chosen.FreelistPage < 0 || chosen.FreelistPage + chosen.FreelistPageCount > chosen.PageCount || chosen.BucketCount < 0)
        {
            throw new CorruptionException(Path, metaOffset, $"meta page {_durableSlot} holds impossible page numbers");
        }

        int? damagedSlot = meta0 is null ? 0 : meta1 is null ? 1 : null;
        var state = new MetaState(chosen.Txid, chosen.CatalogRoot, chosen.BucketCount, chosen.FreelistPage, chosen.FreelistPageCount, chosen.PageCount, 0);
        var free = new List<long>();
        string? freelistDamage = null;
        if (chosen.FreelistPage != 0)
        {
            try
            {
                var run = LoadRun(chosen.FreelistPage, cache: false);
                if (run.Length != chosen.FreelistPageCount * PageSizeBytes)
                {
                    throw Corrupt(chosen.FreelistPage, $"the freelist run is {run.Length / PageSizeBytes} pages, the meta page says {chosen.FreelistPageCount}");
                }

                ReadFreelistRun(run, chosen.FreelistPage, chosen.PageCount, free);
            }
            catch (CorruptionException e)
            {
                // The freelist is derived data: every page the commit's trees do not reach (nor the
                // meta pages, nor the damaged run, which the next commit frees) is free. The walk
                // verifies every tree page as Check does, so a rebuild never trusts damaged pages;
                // it throws when one is damaged too.
                freelistDamage = e.Reason;
                free = new TreeChecker(this, state).FreePagesByReachability();
            }
        }

        Freelist.Load(free);
        _durableTxid = chosen.Txid;
        _meta = state with { FreePageCount = free.Count };
        int openedSlot = _durableSlot;
        if (freelistDamage is not null)
        {
            // Write the rebuilt freelist now, with a synced commit that changes nothing else, so the
            // file is whole again (Check passes) before anyone else uses it.
            using var tx = BeginWrite();
            tx.CommitFreelistOnly();
        }

        OpenReport = new BTreeOpenReport
        {
            Created = _created,
            MetaSlot = openedSlot,
            Txid = chosen.Txid,
            DamagedMetaSlot = damagedSlot,
            DamagedMetaOffsetBytes = damagedSlot * (long)PageSizeBytes,
            DamagedMetaReason = damagedSlot == 0 ? damage0 : damagedSlot == 1 ? damage1 : null,
            FreelistRebuilt = freelistDamage is not null,
            FreelistDamage = freelistDamage,
        };
        LogOpenReport(OpenReport);
    }

    private void LogOpenReport(BTreeOpenReport report)
    {
        if (Options.Logger is not { } logger)
        {
            return;
        }

        if (report.DamagedMetaSlot is { } slot)
        {
            s_damagedMeta(logger, Path, slot, report.DamagedMetaOffsetBytes!.Value, report.DamagedMetaReason!, report.MetaSlot, report.Txid, null);
        }

        if (report.FreelistRebuilt)
        {
            s_freelistRebuilt(logger, Path, report.FreelistDamage!, report.Txid + 1, null);
        }
    }

    private static readonly Action<ILogger, string, int, long, string, int, long, Exception?> s_damagedMeta =
        LoggerMessage.Define<string, int, long, string, int, long>(
            LogLevel.Warning,
            new EventId(1, "BTreeMetaPageDamaged"),
            "B+tree '{Path}': meta page {DamagedSlot} (byte {Offset}) is damaged ({Reason}); opened meta page {Slot}, commit {Txid}, which may be the commit before the newest.");

    private static readonly Action<ILogger, string, string, long, Exception?> s_freelistRebuilt =
        LoggerMessage.Define<string, string, long>(
            LogLevel.Warning,
            new EventId(2, "BTreeFreelistRebuilt"),
            "B+tree '{Path}': the freelist was damaged ({Damage}) and was rebuilt from the pages the trees reach; written by commit {Txid}.");

    internal void ReadFreelistRun(byte[] run, long pageId, long pageCount, List<long> into)
    {
        if (PageFormat.Kind(run) != PageKind.Freelist)
        {
            throw Corrupt(pageId, $"expected the freelist, found kind {(int)PageFormat.Kind(run)}");
        }

        long count = BinaryPrimitives.ReadInt64LittleEndian(run.AsSpan(PageHeader.SizeOf));
        if (count < 0 || PageHeader.SizeOf + PageFormat.FreelistCountSizeBytes + (count * sizeof(long)) > run.Length)
        {
            throw Corrupt(pageId, $"the freelist claims {count} entries");
        }

        var ids = MemoryMarshal.Cast<byte, long>(run.AsSpan(PageHeader.SizeOf + PageFormat.FreelistCountSizeBytes, (int)count * sizeof(long)));
        foreach (long id in ids)
        {
            if (id < 2 || id >= pageCount)
            {
                throw Corrupt(pageId, $"the freelist lists page {id}, outside 2..{pageCount - 1}");
            }

            into.Add(id);
        }
    }

    /// <summary>
    /// The page size <paramref name="file"/> was created with: meta page 0's, or, when that one is
    /// damaged, that of a valid meta page 1 found at any page size; null when neither is found (the
    /// open then reports the damage as usual).
    /// </summary>
    private static int? FindPageSize(IStorageFile file)
    {
        if (TryReadMeta(file, 0, MinPageSizeForSearch).Body is { } meta0)
        {
            return meta0.PageSizeBytes;
        }

        for (int size = BTreeOptions.MinPageSizeBytes; size <= BTreeOptions.MaxPageSizeBytes; size *= 2)
        {
            if (TryReadMeta(file, 1, size).Body is { } meta1 && meta1.PageSizeBytes == size)
            {
                return size;
            }
        }

        return null;
    }

    /// <summary>Meta page 0 is at offset 0 whatever the page size: any valid size locates it.</summary>
    private const int MinPageSizeForSearch = BTreeOptions.MinPageSizeBytes;

    /// <summary>Reads and verifies meta page <paramref name="slot"/> of a file of <paramref name="pageSizeBytes"/> pages; returns the body, or null and why not.</summary>
    private (MetaBody? Body, string? Damage) TryReadMeta(int slot, int pageSizeBytes) => TryReadMeta(_file, slot, pageSizeBytes);

    /// <inheritdoc cref="TryReadMeta(int, int)"/>
    private static (MetaBody? Body, string? Damage) TryReadMeta(IStorageFile file, int slot, int pageSizeBytes)
    {
        Span<byte> bytes = stackalloc byte[MetaBody.EndOffset];
        if (file.Read(slot * (long)pageSizeBytes, bytes) < bytes.Length)
        {
            return (null, "the file ends before it");
        }

        var header = PageHeader.Read(bytes);
        var body = MemoryMarshal.Read<MetaBody>(bytes[PageHeader.SizeOf..]);
        string? damage =
            header.Checksum != PageChecksum.Compute(bytes[4..]) ? "checksum mismatch"
            : header.Kind != PageKind.Meta ? $"kind {(int)header.Kind}, not a meta page"
            : header.PageId != slot ? $"it says it is page {header.PageId}"
            : body.Magic != MetaBody.ExpectedMagic ? "wrong magic number"
            : body.FormatVersion != MetaBody.CurrentFormatVersion ? $"format version {body.FormatVersion}, expected {MetaBody.CurrentFormatVersion}"
            : null;
        return damage is null ? (body, null) : (null, damage);
    }

    private static void FormatMeta(Span<byte> page, MetaState meta, int slot, int pageSizeBytes)
    {
        page.Clear();
        ref var header = ref PageHeader.Of(page);
        header.Kind = PageKind.Meta;
        header.PageId = slot;
        header.Txid = meta.Txid;
        var body = new MetaBody
        {
            Magic = MetaBody.ExpectedMagic,
            FormatVersion = MetaBody.CurrentFormatVersion,
            PageSizeBytes = pageSizeBytes,
            CatalogRoot = meta.CatalogRoot,
            BucketCount = meta.BucketCount,
            FreelistPage = meta.FreelistPage,
            FreelistPageCount = meta.FreelistPageCount,
            PageCount = meta.PageCount,
            Txid = meta.Txid,
        };
        MemoryMarshal.Write(page[PageHeader.SizeOf..], in body);
        header.Checksum = PageChecksum.Compute(page[4..MetaBody.EndOffset]);
    }

    private void WriteMeta(MetaState meta, int slot)
    {
        var page = new byte[PageSizeBytes];
        FormatMeta(page, meta, slot, PageSizeBytes);
        _file.Write(slot * (long)PageSizeBytes, page);
    }

    private void SyncUnsynchronized()
    {
        var meta = _meta;
        if (meta.Txid == _durableTxid)
        {
            return;
        }

        if (!meta.FreelistWritten)
        {
            // The latest commit was NoSync and wrote no freelist, so its meta page alone would name a
            // run that does not list its free pages: a synced commit that changes nothing else writes
            // them, then its meta page (its own transaction id, one past the latest).
            Freelist.Release(Math.Min(OldestReaderSnapshot(), _durableTxid));
            Freelist.BeginTransaction(FreelistReservePages(meta));
            var tx = new Transaction(this, meta, readOnly: false);
            try
            {
                CommitHoldingGate(tx, meta.CatalogRoot, meta.BucketCount, CommitDurability.Synced);
            }
            finally
            {
                tx.ReturnPooledBuffers();
            }

            return;
        }

        try
        {
            _file.Flush();
            WriteMeta(meta, 1 - _durableSlot);
            _file.Flush();
            _durableSlot = 1 - _durableSlot;
            _durableTxid = meta.Txid;
        }
        catch (Exception e)
        {
            _failure = e;
            throw;
        }
    }

    private byte[] BuildFreelistRun(long pageId, int pages, long txid, List<long> ids)
    {
        var run = PageFormat.NewBuffer(pages * PageSizeBytes);
        ref var header = ref PageHeader.Of(run);
        header.Kind = PageKind.Freelist;
        header.PageId = pageId;
        header.Txid = txid;
        header.OverflowPages = pages - 1;
        BinaryPrimitives.WriteInt64LittleEndian(run.AsSpan(PageHeader.SizeOf), ids.Count);
        MemoryMarshal.AsBytes(CollectionsMarshal.AsSpan(ids)).CopyTo(run.AsSpan(PageHeader.SizeOf + PageFormat.FreelistCountSizeBytes));
        PageFormat.Seal(run);
        return run;
    }

    /// <summary>
    /// Seals the page-mode leaves (header and checksum) and writes all pages in page order, one
    /// gather write per run of adjacent pages. Every <see cref="WriteBackChunkBytes"/> written, the
    /// file system is asked to start writing them to the device, so the device works through the
    /// earlier pages while later ones are sealed and written, and the flush that follows has less
    /// left to wait for.
    /// </summary>
    private void WriteDirtyPages(List<(long PageId, byte[] Buffer, bool SealAtWrite)> pages, long txid)
    {
        const int MaxBuffersPerWrite = 256;
        pages.Sort(static (x, y) => x.PageId.CompareTo(y.PageId));
        var batch = new List<ReadOnlyMemory<byte>>();
        long batchStart = 0;
        long nextPage = -1;
        long sinceWriteBack = 0;
        long writeBackStart = -1;
        foreach (var (pageId, buffer, sealAtWrite) in pages)
        {
            if (sealAtWrite)
            {
                LeafPage.Seal(buffer, pageId, txid);
            }

            if (pageId != nextPage || batch.Count == MaxBuffersPerWrite)
            {
                if (batch.Count > 0)
                {
                    _file.Write(batchStart * PageSizeBytes, batch);
                    batch.Clear();
                    if (sinceWriteBack >= WriteBackChunkBytes)
                    {
                        // Pages go out in ascending order: the range holds exactly the chunk's pages
                        // (and the clean ones between them, which cost nothing).
                        _file.StartWriteBack(writeBackStart * PageSizeBytes, (nextPage - writeBackStart) * PageSizeBytes);
                        sinceWriteBack = 0;
                        writeBackStart = -1;
                    }
                }

                batchStart = pageId;
            }

            if (writeBackStart < 0)
            {
                writeBackStart = pageId;
            }

            batch.Add(buffer);
            sinceWriteBack += buffer.Length;
            nextPage = pageId + (buffer.Length / PageSizeBytes);
        }

        if (batch.Count > 0)
        {
            _file.Write(batchStart * PageSizeBytes, batch);
        }
    }

    /// <summary>
    /// Pages to set aside for the next freelist run at the start of a write transaction: the length
    /// <see cref="Freelist.RunCapacityPages"/> gives for the pages free and pending now plus the
    /// current run (which the commit frees). A transaction that frees many more pages than it takes
    /// may outgrow it; its freelist then goes wherever a run of its length is (or the file's end).
    /// </summary>
    private int FreelistReservePages(MetaState meta)
    {
        long entries = Freelist.TotalCount + meta.FreelistPageCount;
        int needed = PageFormat.RunPages(PageFormat.FreelistCountSizeBytes + (entries * sizeof(long)), PageSizeBytes);
        return Freelist.RunCapacityPages(needed, meta.FreelistPageCount);
    }

    private long OldestReaderSnapshot()
    {
        lock (_readerGate)
        {
            long oldest = long.MaxValue;
            foreach (long txid in _readersBySnapshot.Keys)
            {
                oldest = Math.Min(oldest, txid);
            }

            return oldest;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            // The first failure, not the latest refusal, is what the operator needs to see.
            throw new StorageFaultedException(Path, _failure);
        }
    }
}
