using System.Runtime.CompilerServices;
using System.Text;

namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>
/// The key space and value every system is loaded with: <see cref="KeyCount"/> keys of the form
/// <c>/store-load/000042</c> and one 1 KiB value of seeded random bytes, plus how an operation of
/// a workload is drawn and run.
/// </summary>
internal sealed class StoreLoadData
{
    /// <summary>The value size of every put.</summary>
    public const int ValueBytes = 1024;

    /// <summary>In <see cref="StoreLoadWorkload.ReadMostly"/>, one operation in this many is a put.</summary>
    public const int ReadMostlyWriteEvery = 10;

    /// <summary>What every key begins with; the key's number follows it, at least six digits.</summary>
    private static readonly byte[] s_keyPrefix = "/store-load/"u8.ToArray();

    /// <summary>The longest key <see cref="WriteKey"/> writes (the prefix and an int's ten digits).</summary>
    public static readonly int MaxKeyBytes = s_keyPrefix.Length + 10;

    public StoreLoadData(int keyCount, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keyCount);
        KeyCount = keyCount;
        Keys = Enumerable.Range(0, keyCount).Select(BuildKey).ToArray();
        Value = new byte[ValueBytes];
        new Random(seed).NextBytes(Value);
    }

    public int KeyCount { get; }

    /// <summary>Every key, built once (the preload and the open-loop rows, whose operations overlap, take their keys from here).</summary>
    public byte[][] Keys { get; }

    /// <summary>
    /// Writes key <paramref name="index"/> (the same bytes as <see cref="Keys"/>[index]) into
    /// <paramref name="destination"/> (at least <see cref="MaxKeyBytes"/> long) and returns its length.
    /// </summary>
    /// <remarks>A closed-loop caller builds each operation's key into its own buffer, as etcd's benchmark
    /// tool builds each request's key: a caller's buffer stays in its cache, where a key taken from
    /// <see cref="Keys"/> (100,000 arrays) is a cache miss or two per operation that the system under test
    /// is charged for. The buffer is reused only after the operation using it completed.</remarks>
    public static int WriteKey(int index, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        int digits = 6;
        for (int rest = index / 1_000_000; rest > 0; rest /= 10)
        {
            digits++;
        }

        int length = s_keyPrefix.Length + digits;
        if (destination.Length < length)
        {
            throw new ArgumentException($"A key buffer of {destination.Length} bytes is shorter than the key's {length}.", nameof(destination));
        }

        // The number's digits, last first, zero-padded to six ("D6"; invariant digits).
        s_keyPrefix.CopyTo(destination);
        for (int at = length - 1, rest = index; at >= s_keyPrefix.Length; at--, rest /= 10)
        {
            destination[at] = (byte)('0' + (rest % 10));
        }

        return length;
    }

    public byte[] Value { get; }

    /// <summary>Key <paramref name="index"/> in an array of its own (<see cref="WriteKey"/>'s bytes: the preload and the callers write the same keys).</summary>
    private static byte[] BuildKey(int index)
    {
        Span<byte> written = stackalloc byte[MaxKeyBytes];
        return written[..WriteKey(index, written)].ToArray();
    }

    /// <summary>Draws the next operation of <paramref name="workload"/>: a key, and whether it is a write (for the mixed workload).</summary>
    public (int KeyIndex, bool Write) Plan(StoreLoadWorkload workload, Random random)
    {
        int key = random.Next(KeyCount);
        bool write = workload switch
        {
            StoreLoadWorkload.Put or StoreLoadWorkload.TxnCompareAndPut => true,
            StoreLoadWorkload.ReadMostly => random.Next(ReadMostlyWriteEvery) == 0,
            _ => false,
        };
        return (key, write);
    }

    /// <summary>
    /// Runs one operation on <paramref name="member"/>. A read must find the preloaded 1 KiB value
    /// and a compare-and-put's compare must hold (every put writes the same value), else it throws:
    /// a system that answers fast but wrongly is counted as failing, not as fast.
    /// </summary>
    /// <remarks>Its state machine is pooled (every caller awaits it once): a read that suspends (a
    /// linearizable one) would otherwise allocate one per operation, the load generator's garbage, not
    /// the system's.</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ExecuteAsync(IKvClusterUnderLoad cluster, StoreLoadWorkload workload, int member, ReadOnlyMemory<byte> key, bool write)
    {
        switch (workload)
        {
            case StoreLoadWorkload.TxnCompareAndPut:
                if (!await cluster.CompareAndPutAsync(member, key, Value, Value, CancellationToken.None))
                {
                    throw new InvalidOperationException($"The compare of a compare-and-put on {Encoding.ASCII.GetString(key.Span)} failed: its value is not the preloaded one.");
                }

                break;
            case StoreLoadWorkload.Put:
            case StoreLoadWorkload.ReadMostly when write:
                await cluster.PutAsync(member, key, Value, CancellationToken.None);
                break;
            default:
                int length = await cluster.GetAsync(member, key, linearizable: workload != StoreLoadWorkload.SerializableRead, CancellationToken.None);
                if (length != ValueBytes)
                {
                    throw new InvalidOperationException($"A read of the preloaded key {Encoding.ASCII.GetString(key.Span)} returned {length} bytes, not {ValueBytes}.");
                }

                break;
        }
    }
}
