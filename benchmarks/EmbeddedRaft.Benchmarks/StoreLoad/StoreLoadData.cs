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

    public StoreLoadData(int keyCount, int seed)
    {
        KeyCount = keyCount;
        Keys = Enumerable.Range(0, keyCount).Select(i => Encoding.ASCII.GetBytes($"/store-load/{i:D6}")).ToArray();
        Value = new byte[ValueBytes];
        new Random(seed).NextBytes(Value);
    }

    public int KeyCount { get; }

    public byte[][] Keys { get; }

    public byte[] Value { get; }

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
    public async ValueTask ExecuteAsync(IKvClusterUnderLoad cluster, StoreLoadWorkload workload, int member, (int KeyIndex, bool Write) operation)
    {
        byte[] key = Keys[operation.KeyIndex];
        switch (workload)
        {
            case StoreLoadWorkload.TxnCompareAndPut:
                if (!await cluster.CompareAndPutAsync(member, key, Value, Value, CancellationToken.None))
                {
                    throw new InvalidOperationException($"The compare of a compare-and-put on {Encoding.ASCII.GetString(key)} failed: its value is not the preloaded one.");
                }

                break;
            case StoreLoadWorkload.Put:
            case StoreLoadWorkload.ReadMostly when operation.Write:
                await cluster.PutAsync(member, key, Value, CancellationToken.None);
                break;
            default:
                int length = await cluster.GetAsync(member, key, linearizable: workload != StoreLoadWorkload.SerializableRead, CancellationToken.None);
                if (length != ValueBytes)
                {
                    throw new InvalidOperationException($"A read of the preloaded key {Encoding.ASCII.GetString(key)} returned {length} bytes, not {ValueBytes}.");
                }

                break;
        }
    }
}
