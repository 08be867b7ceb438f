using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Settings for <see cref="BTreeDatabase.Open"/>. Every property validates its value when set and
/// throws <see cref="ArgumentOutOfRangeException"/> for a bad one; settings that depend on each other
/// (the key size against the page size) are checked by <see cref="BTreeDatabase.Open"/>.
/// Immutable once built; safe to share between threads and databases.
/// </summary>
public sealed class BTreeOptions
{
    /// <summary>The default page size, 4 KiB.</summary>
    public const int DefaultPageSizeBytes = 4096;

    /// <summary>The default and largest useful maximum key size (the same as LMDB's).</summary>
    public const int DefaultMaxKeySizeBytes = 511;

    private readonly int _pageSizeBytes = DefaultPageSizeBytes;
    private readonly int? _maxKeySizeBytes;
    private readonly int _maxValueSizeBytes = 64 * 1024 * 1024;
    private readonly long _pageCacheSizeBytes = 256L * 1024 * 1024;

    /// <summary>
    /// Size of every page in the file: a power of two from 1 KiB to 64 KiB. Fixed when the file is
    /// created; opening a file with a different page size throws <see cref="ArgumentException"/>.
    /// </summary>
    public int PageSizeBytes
    {
        get => _pageSizeBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1024);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 65536);
            if (!int.IsPow2(value))
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, "PageSizeBytes must be a power of two.");
            }

            _pageSizeBytes = value;
        }
    }

    /// <summary>
    /// Longest key (and bucket name, in UTF-8 bytes) accepted; longer ones are refused with an
    /// <see cref="ArgumentException"/>. Defaults to the smaller of 511 and
    /// <see cref="MaxKeySizeLimit"/> for the page size; at most <see cref="MaxKeySizeLimit"/>.
    /// </summary>
    public int MaxKeySizeBytes
    {
        get => _maxKeySizeBytes ?? Math.Min(DefaultMaxKeySizeBytes, MaxKeySizeLimit(_pageSizeBytes));
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, ushort.MaxValue);
            _maxKeySizeBytes = value;
        }
    }

    /// <summary>Largest value accepted (default 64 MiB); larger ones are refused with an <see cref="ArgumentException"/>.</summary>
    public int MaxValueSizeBytes
    {
        get => _maxValueSizeBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 0);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 1024 * 1024 * 1024);
            _maxValueSizeBytes = value;
        }
    }

    /// <summary>
    /// Memory for the shared cache of verified, immutable pages (default 256 MiB). Reads are served
    /// from it; a page's checksum is verified once, when it is loaded. At least 64 KiB.
    /// </summary>
    public long PageCacheSizeBytes
    {
        get => _pageCacheSizeBytes;
        init
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 64 * 1024);
            _pageCacheSizeBytes = value;
        }
    }

    /// <summary>
    /// Where the database logs what a direct caller would otherwise not hear about: at open, a damaged
    /// meta page (the open may have fallen back one commit) and a rebuilt freelist, as warnings (also
    /// in <see cref="BTreeDatabase.OpenReport"/>). Null (the default): nothing is logged.
    /// </summary>
    public ILogger? Logger { get; init; }

    /// <summary>The largest key size a page of <paramref name="pageSizeBytes"/> allows: a leaf or branch must hold at least four entries.</summary>
    public static int MaxKeySizeLimit(int pageSizeBytes) => Tree.MaxInlineEntryBytes(pageSizeBytes) - Tree.LargestEntryOverheadBytes;

    internal void Validate()
    {
        if (MaxKeySizeBytes > MaxKeySizeLimit(PageSizeBytes))
        {
            throw new ArgumentException(
                $"MaxKeySizeBytes {MaxKeySizeBytes} is too large for PageSizeBytes {PageSizeBytes}; at most {MaxKeySizeLimit(PageSizeBytes)}.",
                nameof(MaxKeySizeBytes));
        }
    }
}
