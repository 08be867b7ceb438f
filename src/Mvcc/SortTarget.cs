namespace EmbeddedRaft.Mvcc;

/// <summary>The field a range sorts by (etcd's <c>RangeRequest.SortTarget</c>, same numbers).</summary>
public enum SortTarget
{
    /// <summary>The key, byte-wise.</summary>
    Key = 0,

    /// <summary><see cref="KeyValue.Version"/>.</summary>
    Version = 1,

    /// <summary><see cref="KeyValue.CreateRevision"/>.</summary>
    Create = 2,

    /// <summary><see cref="KeyValue.ModRevision"/>.</summary>
    Mod = 3,

    /// <summary>The value, byte-wise.</summary>
    Value = 4,
}
