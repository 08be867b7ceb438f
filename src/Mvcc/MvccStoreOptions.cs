using EmbeddedRaft.Storage.BTree;
using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Mvcc;

/// <summary>
/// Settings of an <see cref="MvccStore"/>. Each property checks its own range when set and throws
/// <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/> is the
/// property's name; the rule between properties (the B+tree must hold the largest request's value)
/// is checked by <see cref="MvccStore.Open(string, MvccStoreOptions?)"/>, which throws
/// <see cref="ArgumentException"/> naming both.
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds from
/// Microsoft.Extensions.Configuration; vary it with <c>MvccStoreOptions.Default with { ... }</c>. Thread-safe to share.
/// </remarks>
public sealed record MvccStoreOptions
{
    /// <summary>
    /// The default page size of the store's B+tree, 16 KiB (the B+tree's own default is 4 KiB). A
    /// stored revision is its key, value and a small header in one B+tree entry, and the B+tree moves
    /// an entry larger than a quarter of a page body to an overflow page of its own: with 4 KiB pages
    /// every value from about 1 KiB up cost a whole 4 KiB page (allocated, checksummed and written,
    /// then read back to be compacted); with 16 KiB pages values up to about 4 KiB stay inline, packed
    /// into shared leaves (docs/benchmarks.md, "CPU per replicated put").
    /// </summary>
    public const int DefaultBTreePageSizeBytes = 16 * 1024;

    /// <summary>The default <see cref="BatchLimit"/>: 10,000 writes, as etcd's backend batch limit.</summary>
    public const int DefaultBatchLimit = 10_000;

    /// <summary>The largest <see cref="BatchLimit"/> and <see cref="CompactionBatchLimit"/> accepted.</summary>
    public const int MaxBatchLimit = 1_000_000;

    /// <summary>The default <see cref="CompactionBatchLimit"/>: 1,000 revisions, as etcd.</summary>
    public const int DefaultCompactionBatchLimit = 1_000;

    /// <summary>The default <see cref="MaxTxnOps"/>: 128, as etcd.</summary>
    public const int DefaultMaxTxnOps = 128;

    /// <summary>The default <see cref="MaxRequestBytes"/>: 1.5 MiB, as etcd.</summary>
    public const int DefaultMaxRequestBytes = 1536 * 1024;

    /// <summary>The largest <see cref="MaxRequestBytes"/> accepted: 64 MiB.</summary>
    public const int MaxMaxRequestBytes = 64 * 1024 * 1024;

    /// <summary>The default <see cref="BatchInterval"/>: 100 ms, as etcd's backend batch interval.</summary>
    public static readonly TimeSpan DefaultBatchInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest <see cref="BatchInterval"/> accepted: 1 minute.</summary>
    public static readonly TimeSpan MaxBatchInterval = TimeSpan.FromMinutes(1);

    /// <summary>Creates options with every default.</summary>
    public MvccStoreOptions()
    {
    }

    /// <summary>Every default: synced writes, etcd's limits, a B+tree of <see cref="DefaultBTreePageSizeBytes"/> pages, no logging.</summary>
    public static MvccStoreOptions Default { get; } = new();

    /// <summary>When a write is durable; see <see cref="MvccDurability"/>. Default <see cref="MvccDurability.Synced"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not a defined value (ParamName "Durability").</exception>
    public MvccDurability Durability
    {
        get;
        init
        {
            if (!Enum.IsDefined(value))
            {
                throw new ArgumentOutOfRangeException(nameof(Durability), value, $"{nameof(Durability)} must be {nameof(MvccDurability.Synced)} or {nameof(MvccDurability.NoSync)}.");
            }

            field = value;
        }
    } = MvccDurability.Synced;

    /// <summary>
    /// Most write transactions (puts, deletes, txns, compactions) in one B+tree commit, from 1 to
    /// <see cref="MaxBatchLimit"/>. Default <see cref="DefaultBatchLimit"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "BatchLimit").</exception>
    public int BatchLimit
    {
        get;
        init => field = OptionChecks.InRange(value, 1, MaxBatchLimit, nameof(BatchLimit));
    } = DefaultBatchLimit;

    /// <summary>
    /// With <see cref="MvccDurability.NoSync"/>, the longest an applied write waits for its batch to
    /// be committed to the B+tree, from 1 ms to <see cref="MaxBatchInterval"/>. (Synced writes are
    /// committed as soon as no other write is waiting.) Default <see cref="DefaultBatchInterval"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "BatchInterval").</exception>
    public TimeSpan BatchInterval
    {
        get;
        init
        {
            if (value < TimeSpan.FromMilliseconds(1) || value > MaxBatchInterval)
            {
                throw new ArgumentOutOfRangeException(nameof(BatchInterval), value, $"{nameof(BatchInterval)} must be from 1 ms to {MaxBatchInterval}.");
            }

            field = value;
        }
    } = DefaultBatchInterval;

    /// <summary>
    /// Keys whose history one step of a compaction prunes in memory, and revisions one step removes
    /// from the B+tree (one commit); writers wait for at most one step. From 1 to
    /// <see cref="MaxBatchLimit"/>. Default <see cref="DefaultCompactionBatchLimit"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "CompactionBatchLimit").</exception>
    public int CompactionBatchLimit
    {
        get;
        init => field = OptionChecks.InRange(value, 1, MaxBatchLimit, nameof(CompactionBatchLimit));
    } = DefaultCompactionBatchLimit;

    /// <summary>
    /// Most compares, and most operations in each branch, of a transaction (etcd's
    /// <c>--max-txn-ops</c>), at least 1. Default <see cref="DefaultMaxTxnOps"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Below 1 (ParamName "MaxTxnOps").</exception>
    public int MaxTxnOps
    {
        get;
        init => field = OptionChecks.AtLeast(value, 1, nameof(MaxTxnOps));
    } = DefaultMaxTxnOps;

    /// <summary>
    /// Largest write request accepted, measured as its etcd protobuf encoding (etcd's
    /// <c>--max-request-bytes</c>), from 256 to <see cref="MaxMaxRequestBytes"/>. This bounds keys
    /// and values too. Default <see cref="DefaultMaxRequestBytes"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of range (ParamName "MaxRequestBytes").</exception>
    public int MaxRequestBytes
    {
        get;
        init => field = OptionChecks.InRange(value, 256, MaxMaxRequestBytes, nameof(MaxRequestBytes));
    } = DefaultMaxRequestBytes;

    /// <summary>
    /// Options of the B+tree file the store keeps its revisions in (page size, page cache). Its
    /// <see cref="BTreeOptions.MaxValueSizeBytes"/> must hold <see cref="MaxRequestBytes"/> plus a
    /// small header. Default: <see cref="BTreeOptions.Default"/> with pages of
    /// <see cref="DefaultBTreePageSizeBytes"/>.
    /// </summary>
    /// <remarks>
    /// The page size applies when the store's file is created (or restored from a snapshot image):
    /// an existing file always opens with the page size it was created with, whatever this says
    /// (the store sets <see cref="BTreeOptions.AdoptExistingPageSize"/>), so a store created with
    /// another default keeps opening.
    /// </remarks>
    /// <exception cref="ArgumentNullException">Set to null.</exception>
    // A fresh instance, never the shared BTreeOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public BTreeOptions BTree
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(BTree));
    } = new() { PageSizeBytes = DefaultBTreePageSizeBytes };

    /// <summary>Lease settings: the expiry clock, minimum TTL, expiry check interval and revoke rate. Default: a new <see cref="LeaseOptions"/> with its defaults (<see cref="LeaseOptions.Default"/>'s values).</summary>
    /// <exception cref="ArgumentNullException">Set to null.</exception>
    // A fresh instance, never the shared LeaseOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public LeaseOptions Leases
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Leases));
    } = new();

    /// <summary>Settings of the store's watches (buffer per watcher, progress interval and its clock). Default: a new <see cref="WatchOptions"/> with its defaults (<see cref="WatchOptions.Default"/>'s values).</summary>
    /// <exception cref="ArgumentNullException">Set to null.</exception>
    // A fresh instance, never the shared WatchOptions.Default: a configuration binder binds a nested section
    // into the property's current value (through its init setters), which would change the default for everyone.
    public WatchOptions Watch
    {
        get;
        init => field = OptionChecks.NotNull(value, nameof(Watch));
    } = new();

    /// <summary>Where the store reports what it did at open (index rebuilt, compaction resumed). Default none.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>
    /// Deterministic mode (for the whole-cluster simulator, issue 18): where the store's writer and
    /// every continuation of the store's own awaits run. Null (the default) is the normal mode: a
    /// dedicated writer thread, and awaits that do not come back to the caller's context. With a
    /// scheduler (a single-threaded one, such as the tests' DeterministicTaskScheduler) the store
    /// starts no thread: a write schedules a writer pump task on it, which applies what is queued
    /// and returns; the <see cref="MvccDurability.NoSync"/> batch interval is a timer of
    /// <see cref="TimeProvider"/> that only schedules the pump; lease expiry and watch progress
    /// timers post their work to it; and every await inside the store resumes on it. Together with
    /// a manual clock and the fault-injecting file system the store then runs only when the
    /// scheduler runs it, on the scheduler's thread, in an order fixed by the scheduler's queue.
    /// Blocking calls (<see cref="MvccStore.Dispose"/>, <see cref="MvccStore.CaptureImage"/>) run the
    /// pump inline on the calling thread instead of waiting for it, so call them from the
    /// scheduler's thread (never from a second thread while the scheduler runs).
    /// </summary>
    internal TaskScheduler? Scheduler { get; init; }

    /// <summary>
    /// The clock of the writer's <see cref="BatchInterval"/> (a manual clock makes the batch
    /// commits deterministic), and when <see cref="Scheduler"/> is set also of lease expiry and
    /// watch progress where <see cref="Leases"/> and <see cref="Watch"/> leave their clocks at
    /// <see cref="System.TimeProvider.System"/>; null means <see cref="System.TimeProvider.System"/>.
    /// Without a scheduler the writer thread reads this clock for a batch's age, but its idle wait
    /// for a request is a real-time wait of the remaining interval (with a manual clock that stands
    /// still, the thread wakes once per interval of real time to read it again).
    /// </summary>
    internal TimeProvider? TimeProvider { get; init; }

    /// <summary>Checks the rules between properties.</summary>
    /// <exception cref="ArgumentException">The B+tree cannot hold the largest value a request may carry.</exception>
    internal void Validate()
    {
        long largestStoredValue = (long)MaxRequestBytes + Store.StoredValue.MaxHeaderSizeBytes;
        if (BTree.MaxValueSizeBytes < largestStoredValue)
        {
            throw new ArgumentException(
                $"{nameof(BTree)}.{nameof(BTreeOptions.MaxValueSizeBytes)} ({BTree.MaxValueSizeBytes}) must be at least {nameof(MaxRequestBytes)} ({MaxRequestBytes}) plus {Store.StoredValue.MaxHeaderSizeBytes} bytes of header.",
                "options");
        }
    }
}
