namespace EmbeddedRaft.Benchmarks.StoreLoad;

/// <summary>What the callers of one row do, each operation on a key drawn uniformly from the preloaded key space.</summary>
internal enum StoreLoadWorkload
{
    /// <summary>Put a 1 KiB value.</summary>
    Put,

    /// <summary>A single-key range, linearizable (a read-index round on the member asked; etcd's default).</summary>
    LinearizableRead,

    /// <summary>A single-key range served from the member's local store.</summary>
    SerializableRead,

    /// <summary>A transaction: if the key's value equals the 1 KiB value it was preloaded with, put that value again, else range it (the failure branch is counted as a failure).</summary>
    TxnCompareAndPut,

    /// <summary>90% linearizable single-key reads, 10% 1 KiB puts.</summary>
    ReadMostly,
}

/// <summary>The command-line and report names of <see cref="StoreLoadWorkload"/>.</summary>
internal static class StoreLoadWorkloads
{
    public static readonly StoreLoadWorkload[] All = Enum.GetValues<StoreLoadWorkload>();

    public static string Name(this StoreLoadWorkload workload) => workload switch
    {
        StoreLoadWorkload.Put => "put",
        StoreLoadWorkload.LinearizableRead => "linearizable-read",
        StoreLoadWorkload.SerializableRead => "serializable-read",
        StoreLoadWorkload.TxnCompareAndPut => "txn-compare-and-put",
        StoreLoadWorkload.ReadMostly => "read-90-write-10",
        _ => throw new ArgumentOutOfRangeException(nameof(workload), workload, "Unknown workload."),
    };

    public static StoreLoadWorkload Parse(string name) =>
        TryParse(name, out var found) ? found : throw new ArgumentException(UnknownWorkload(name));

    public static bool TryParse(string name, out StoreLoadWorkload workload)
    {
        workload = All.FirstOrDefault(w => w.Name() == name, (StoreLoadWorkload)(-1));
        return workload >= 0;
    }

    public static string UnknownWorkload(string name) => $"Unknown workload '{name}': one of {string.Join(", ", All.Select(w => w.Name()))}.";

    /// <summary>True when the workload writes, so the row is followed by a compaction.</summary>
    public static bool Writes(this StoreLoadWorkload workload) =>
        workload is StoreLoadWorkload.Put or StoreLoadWorkload.TxnCompareAndPut or StoreLoadWorkload.ReadMostly;
}
