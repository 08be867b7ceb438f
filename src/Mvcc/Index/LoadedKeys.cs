using System.Runtime.InteropServices;

namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// The keys an open finds, for <see cref="KeyIndex.Load(LoadedKeys)"/>: numbered by slot in the
/// order they were first seen, each key's bytes in one shared array, and either its
/// <see cref="KeyHistory"/> or (none) the one put that created it. Also the equality of slots by
/// their keys' bytes, with lookups by span, for the hash map the open finds a key's slot in: the map
/// holds only slot numbers, and <see cref="Create"/> (a span lookup adding a key) gives the new key
/// its slot, so a key costs no object of its own while the revisions are scanned.
/// </summary>
/// <remarks>
/// Why: an array per key, live until the index is built, was copied by every gen0 and gen1
/// collection of the open (docs/benchmarks.md, "MVCC in-order puts and the open, session 10"). One thread.
/// Invariant: slots 0..<see cref="Count"/>-1 are used, and a slot's key bytes never change.
/// </remarks>
internal sealed class LoadedKeys : IEqualityComparer<int>, IAlternateEqualityComparer<ReadOnlySpan<byte>, int>
{
    private byte[] _keyBytes;
    private int _keyBytesUsed;
    private int[] _keyStarts;
    private int[] _keyLengths;
    private KeyHistory?[] _histories;
    private Revision[] _singles;

    /// <summary>Room for <paramref name="capacity"/> keys of about <paramref name="keyBytesEach"/> bytes before anything grows.</summary>
    public LoadedKeys(int capacity, int keyBytesEach)
    {
        capacity = Math.Max(capacity, 16);
        _keyBytes = GC.AllocateUninitializedArray<byte>(capacity * Math.Max(keyBytesEach, 1));
        _keyStarts = new int[capacity];
        _keyLengths = new int[capacity];
        _histories = new KeyHistory?[capacity];
        _singles = new Revision[capacity];
    }

    public int Count { get; private set; }

    public ReadOnlySpan<byte> KeyAt(int slot) => new(_keyBytes, _keyStarts[slot], _keyLengths[slot]);

    /// <summary>The key's history, or null when its one put is <see cref="SingleAt"/>.</summary>
    public KeyHistory? HistoryAt(int slot) => _histories[slot];

    public Revision SingleAt(int slot) => _singles[slot];

    /// <summary>A new slot for <paramref name="key"/> (not looked up: the caller knows it is new), with no revision yet.</summary>
    public int Add(ReadOnlySpan<byte> key)
    {
        if (Count == _keyStarts.Length)
        {
            int grown = Count * 2;
            Array.Resize(ref _keyStarts, grown);
            Array.Resize(ref _keyLengths, grown);
            Array.Resize(ref _histories, grown);
            Array.Resize(ref _singles, grown);
        }

        if (_keyBytes.Length - _keyBytesUsed < key.Length)
        {
            var grown = GC.AllocateUninitializedArray<byte>(Math.Max(_keyBytes.Length * 2, _keyBytesUsed + key.Length));
            _keyBytes.AsSpan(0, _keyBytesUsed).CopyTo(grown);
            _keyBytes = grown;
        }

        int slot = Count++;
        key.CopyTo(_keyBytes.AsSpan(_keyBytesUsed));
        _keyStarts[slot] = _keyBytesUsed;
        _keyLengths[slot] = key.Length;
        _keyBytesUsed += key.Length;
        return slot;
    }

    /// <summary>The key's history is the one put at <paramref name="revision"/> that created it.</summary>
    public void SetSingle(int slot, Revision revision)
    {
        _histories[slot] = null;
        _singles[slot] = revision;
    }

    public void SetHistory(int slot, KeyHistory history) => _histories[slot] = history;

    public bool Equals(int x, int y) => KeyAt(x).SequenceEqual(KeyAt(y));

    public int GetHashCode(int obj) => Hash(KeyAt(obj));

    public bool Equals(ReadOnlySpan<byte> alternate, int other) => alternate.SequenceEqual(KeyAt(other));

    public int GetHashCode(ReadOnlySpan<byte> alternate) => Hash(alternate);

    public int Create(ReadOnlySpan<byte> alternate) => Add(alternate);

    /// <summary>
    /// The slot of <paramref name="key"/> in <paramref name="slots"/> (a map made with this instance
    /// as its comparer, each slot mapped to itself), found or added by one probe; true when added.
    /// </summary>
    public bool FindOrAdd(Dictionary<int, int>.AlternateLookup<ReadOnlySpan<byte>> slots, ReadOnlySpan<byte> key, out int slot)
    {
        ref int found = ref CollectionsMarshal.GetValueRefOrAddDefault(slots, key, out bool exists);
        if (!exists)
        {
            // Create just gave the key the last slot.
            found = Count - 1;
        }

        slot = found;
        return !exists;
    }

    private static int Hash(ReadOnlySpan<byte> key)
    {
        var hash = default(HashCode);
        hash.AddBytes(key);
        return hash.ToHashCode();
    }
}
