namespace EmbeddedRaft.Mvcc.Replication;

/// <summary>Alarms a <see cref="ReplicatedStore"/> may have raised (etcd's alarms), shown in <see cref="ReplicatedStoreStatus.Alarms"/>.</summary>
[Flags]
public enum StoreAlarms
{
    /// <summary>No alarm.</summary>
    None = 0,

    /// <summary>Members disagree on their data at a common revision: writes fail with <see cref="MvccException"/> whose <see cref="MvccException.Error"/> is <see cref="MvccError.Corrupt"/>.</summary>
    Corrupt = 1,

    /// <summary>The store is out of space (reserved: not raised yet).</summary>
    NoSpace = 2,
}
