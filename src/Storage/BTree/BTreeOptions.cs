using Microsoft.Extensions.Logging;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Settings for <see cref="BTreeDatabase.Open"/>. Each property checks its own range when set and
/// throws <see cref="ArgumentOutOfRangeException"/> whose <see cref="ArgumentException.ParamName"/>
/// is the property's name; the rule between properties (the key size against the page size) is
/// checked by <see cref="BTreeDatabase.Open"/>, which throws <see cref="ArgumentException"/>
/// naming both options.
/// </summary>
/// <remarks>
/// An immutable record with a parameterless constructor and <c>init</c> accessors, so it binds from
/// Microsoft.Extensions.Configuration; vary <see cref="Default"/> with <c>with</c>
/// (<c>BTreeOptions.Default with { PageSizeBytes = 8192 }</c>), whose setters validate again.
/// Safe to share between threads and databases.
/// </remarks>
public sealed record BTreeOptions
{
    /// <summary>The default <see cref="PageSizeBytes"/>, 4 KiB.</summary>
    public const int DefaultPageSizeBytes = 4096;

    /// <summary>The smallest <see cref="PageSizeBytes"/>, 1 KiB.</summary>
    public const int MinPageSizeBytes = 1024;

    /// <summary>The largest <see cref="PageSizeBytes"/>, 64 KiB.</summary>
    public const int MaxPageSizeBytes = 65536;

    /// <summary>The default and largest useful maximum key size (the same as LMDB's).</summary>
    public const int DefaultMaxKeySizeBytes = 511;

    /// <summary>The default <see cref="MaxValueSizeBytes"/>, 64 MiB.</summary>
    public const int DefaultMaxValueSizeBytes = 64 * 1024 * 1024;

    /// <summary>The largest <see cref="MaxValueSizeBytes"/>, 1 GiB.</summary>
    public const int MaxMaxValueSizeBytes = 1024 * 1024 * 1024;

    /// <summary>The default <see cref="PageCacheSizeBytes"/>, 256 MiB.</summary>
    public const long DefaultPageCacheSizeBytes = 256L * 1024 * 1024;

    /// <summary>The smallest <see cref="PageCacheSizeBytes"/>, 64 KiB.</summary>
    public const long MinPageCacheSizeBytes = 64 * 1024;

    private readonly int? _maxKeySizeBytes;

    /// <summary>Creates options with every default.</summary>
    public BTreeOptions()
    {
    }

    /// <summary>Every default.</summary>
    public static BTreeOptions Default { get; } = new();

    /// <summary>
    /// Size of every page in the file: a power of two from 1 KiB to 64 KiB (default 4 KiB). Fixed
    /// when the file is created; opening a file with a different page size throws <see cref="ArgumentException"/>,
    /// unless <see cref="AdoptExistingPageSize"/> is set.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value that is not a power of two from <see cref="MinPageSizeBytes"/> to <see cref="MaxPageSizeBytes"/>.</exception>
    public int PageSizeBytes
    {
        get;
        init
        {
            if (value is < MinPageSizeBytes or > MaxPageSizeBytes || !int.IsPow2(value))
            {
                throw new ArgumentOutOfRangeException(nameof(PageSizeBytes), value, $"{nameof(PageSizeBytes)} must be a power of two from {MinPageSizeBytes} to {MaxPageSizeBytes}.");
            }

            field = value;
        }
    } = DefaultPageSizeBytes;

    /// <summary>
    /// When true, <see cref="BTreeDatabase.Open"/> opens an existing file with the page size it was
    /// created with (read from its meta page) instead of refusing a file whose page size differs from
    /// <see cref="PageSizeBytes"/>, which then applies only to files this creates (and to restored
    /// images). <see cref="BTreeDatabase.Options"/> reports the page size in use. Default false: a
    /// page size other than the options' is refused, so a caller who chose one gets it or an error.
    /// </summary>
    /// <remarks>For a store whose default page size may change between versions (the MVCC store's does),
    /// so files created by an older version keep opening.</remarks>
    public bool AdoptExistingPageSize { get; init; }

    /// <summary>
    /// Longest key (and bucket name, in UTF-8 bytes) accepted; longer ones are refused with an
    /// <see cref="ArgumentException"/>. Defaults to the smaller of 511 and
    /// <see cref="MaxKeySizeLimit"/> for the page size; at most <see cref="MaxKeySizeLimit"/>
    /// (checked by <see cref="BTreeDatabase.Open"/>, since it depends on <see cref="PageSizeBytes"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value below 1 or above 65535.</exception>
    public int MaxKeySizeBytes
    {
        get => _maxKeySizeBytes ?? Math.Min(DefaultMaxKeySizeBytes, MaxKeySizeLimit(PageSizeBytes));
        init
        {
            if (value is < 1 or > ushort.MaxValue)
            {
                throw new ArgumentOutOfRangeException(nameof(MaxKeySizeBytes), value, $"{nameof(MaxKeySizeBytes)} must be from 1 to {ushort.MaxValue} (and at most MaxKeySizeLimit(PageSizeBytes)).");
            }

            _maxKeySizeBytes = value;
        }
    }

    /// <summary>Largest value accepted (default 64 MiB, at most 1 GiB); larger ones are refused with an <see cref="ArgumentException"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a negative value or one above <see cref="MaxMaxValueSizeBytes"/>.</exception>
    public int MaxValueSizeBytes
    {
        get;
        init => field = OptionChecks.InRange(value, 0, MaxMaxValueSizeBytes, nameof(MaxValueSizeBytes));
    } = DefaultMaxValueSizeBytes;

    /// <summary>
    /// Memory for the shared cache of verified, immutable pages (default 256 MiB). Reads are served
    /// from it; a page's checksum is verified once, when it is loaded. At least 64 KiB.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set to a value below <see cref="MinPageCacheSizeBytes"/>.</exception>
    public long PageCacheSizeBytes
    {
        get;
        init => field = OptionChecks.AtLeast(value, MinPageCacheSizeBytes, nameof(PageCacheSizeBytes));
    } = DefaultPageCacheSizeBytes;

    /// <summary>
    /// Where the database logs what a direct caller would otherwise not hear about: at open, a damaged
    /// meta page (the open may have fallen back one commit) and a rebuilt freelist, as warnings (also
    /// in <see cref="BTreeDatabase.OpenReport"/>). Null (the default): nothing is logged.
    /// </summary>
    public ILogger? Logger { get; init; }

    /// <summary>The largest key size a page of <paramref name="pageSizeBytes"/> allows: a leaf or branch must hold at least four entries.</summary>
    public static int MaxKeySizeLimit(int pageSizeBytes) => Tree.MaxInlineEntryBytes(pageSizeBytes) - Tree.LargestEntryOverheadBytes;

    /// <summary>Checks the rule between properties; called by <see cref="BTreeDatabase.Open"/>.</summary>
    /// <exception cref="ArgumentException"><see cref="MaxKeySizeBytes"/> is above <see cref="MaxKeySizeLimit"/> of <see cref="PageSizeBytes"/>.</exception>
    internal void Validate()
    {
        if (MaxKeySizeBytes > MaxKeySizeLimit(PageSizeBytes))
        {
            throw new ArgumentException(
                $"{nameof(MaxKeySizeBytes)} {MaxKeySizeBytes} is too large for {nameof(PageSizeBytes)} {PageSizeBytes}; at most {MaxKeySizeLimit(PageSizeBytes)}.",
                nameof(MaxKeySizeBytes));
        }
    }
}
