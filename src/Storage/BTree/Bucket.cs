using System.Text;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// A named keyspace of a <see cref="BTreeDatabase"/>, seen through one <see cref="Transaction"/>:
/// keys are non-empty byte strings ordered byte-wise (unsigned lexicographic), values are byte
/// strings of any length up to <see cref="BTreeOptions.MaxValueSizeBytes"/>.
/// </summary>
/// <remarks>
/// Valid until its transaction ends (then every member throws <see cref="ObjectDisposedException"/>)
/// or until the bucket is deleted in that transaction (<see cref="InvalidOperationException"/>).
/// Not thread-safe, like its transaction, except lookups (<see cref="TryGet"/>, <see cref="Get"/>) in a read
/// transaction, which several threads may make at once (see <see cref="Transaction"/>).
/// </remarks>
public sealed class Bucket
{
    private readonly Transaction _tx;
    private bool _deleted;

    internal Bucket(Transaction tx, string name, Tree tree)
    {
        _tx = tx;
        Name = name;
        Tree = tree;
    }

    /// <summary>The bucket's name.</summary>
    public string Name { get; }

    /// <summary>Number of keys in the bucket, as this transaction sees it.</summary>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public long Count
    {
        get
        {
            ThrowIfUnusable();
            return Tree.Count;
        }
    }

    internal Tree Tree { get; }

    /// <summary>
    /// Looks up <paramref name="key"/>. The returned value is valid until the transaction ends; copy
    /// it to keep it longer. Allocates nothing.
    /// </summary>
    /// <returns>True and the value when the key is present; false otherwise.</returns>
    /// <exception cref="ArgumentException">The key is empty or longer than <see cref="BTreeOptions.MaxKeySizeBytes"/>
    /// (as for <see cref="Put"/>: such a key can never be present, and a silent false would hide the caller's mistake).</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    /// <exception cref="CorruptionException">A page on the path failed its checksum or a structural check.</exception>
    public bool TryGet(ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        ThrowIfUnusable();
        _tx.Database.ValidateKey(key);
        return Tree.TryGet(key, out value);
    }

    /// <summary>True when <see cref="FindMany"/> may be used (a tree read through committed pages only: any read transaction's).</summary>
    internal bool CanFindMany => Tree.CanFindMany;

    /// <summary>
    /// <see cref="TryGet"/> of many keys of one length at once, their cache misses overlapped
    /// (<see cref="Tree.FindMany"/>): for the MVCC store's batched single-key reads.
    /// </summary>
    /// <exception cref="ArgumentException">The key length is 0 or above the maximum, or <paramref name="keys"/> does not hold that many keys.</exception>
    /// <exception cref="InvalidOperationException"><see cref="CanFindMany"/> is false, or the bucket was deleted.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    /// <exception cref="CorruptionException">A page on a path failed a structural check.</exception>
    internal void FindMany(ReadOnlySpan<byte> keys, int keyLength, Span<LeafHit> hits)
    {
        ThrowIfUnusable();
        if (hits.IsEmpty)
        {
            return;
        }

        _tx.Database.ValidateKey(keys[..Math.Min(keys.Length, Math.Max(keyLength, 0))]);
        Tree.FindMany(keys, keyLength, hits);
    }

    /// <summary>The value of a key <see cref="FindMany"/> found; valid until the transaction ends.</summary>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    internal ReadOnlySpan<byte> ValueAt(in LeafHit hit)
    {
        ThrowIfUnusable();
        return Tree.ValueAt(hit);
    }

    /// <summary>Returns a copy of the value stored under <paramref name="key"/>, or null when there is none.</summary>
    /// <exception cref="ArgumentException">The key is empty or longer than <see cref="BTreeOptions.MaxKeySizeBytes"/>.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    /// <exception cref="CorruptionException">A page on the path failed its checksum or a structural check.</exception>
    public byte[]? Get(ReadOnlySpan<byte> key) => TryGet(key, out var value) ? value.ToArray() : null;

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/>, replacing any previous value.</summary>
    /// <exception cref="ArgumentException">The key is empty or longer than <see cref="BTreeOptions.MaxKeySizeBytes"/>,
    /// or the value is longer than <see cref="BTreeOptions.MaxValueSizeBytes"/>.</exception>
    /// <exception cref="InvalidOperationException">The transaction is read-only, or the bucket was deleted.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public void Put(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        ThrowIfUnusable();
        _tx.ThrowIfReadOnly();
        _tx.Database.ValidateKey(key);
        _tx.Database.ValidateValue(value);
        Tree.Put(key, value);
    }

    /// <summary>Removes <paramref name="key"/>; returns false when it was not present.</summary>
    /// <exception cref="ArgumentException">The key is empty or longer than <see cref="BTreeOptions.MaxKeySizeBytes"/>, as for <see cref="Put"/>.</exception>
    /// <exception cref="InvalidOperationException">The transaction is read-only, or the bucket was deleted.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public bool Delete(ReadOnlySpan<byte> key)
    {
        ThrowIfUnusable();
        _tx.ThrowIfReadOnly();
        _tx.Database.ValidateKey(key);
        return Tree.Delete(key);
    }

    /// <summary>
    /// Creates a cursor over the bucket, not yet positioned. A change to the bucket through
    /// <see cref="Put"/> or <see cref="Delete"/> invalidates its cursors until they are positioned again.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public Cursor CreateCursor()
    {
        ThrowIfUnusable();
        return new Cursor(this, _tx);
    }

    internal void MarkDeleted() => _deleted = true;

    internal void ThrowIfUnusable()
    {
        _tx.ThrowIfEnded();
        if (_deleted)
        {
            throw new InvalidOperationException($"The bucket '{Name}' was deleted in this transaction.");
        }
    }

    internal static byte[] EncodeName(string name, int maxKeySizeBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var bytes = Encoding.UTF8.GetBytes(name);
        if (bytes.Length > maxKeySizeBytes)
        {
            throw new ArgumentException($"The bucket name is {bytes.Length} bytes in UTF-8; MaxKeySizeBytes is {maxKeySizeBytes}.", nameof(name));
        }

        return bytes;
    }
}
