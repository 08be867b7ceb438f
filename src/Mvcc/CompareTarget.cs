namespace EmbeddedRaft.Mvcc;

/// <summary>The field a <see cref="Compare"/> tests (etcd's <c>Compare.CompareTarget</c>, same numbers).</summary>
public enum CompareTarget
{
    /// <summary><see cref="KeyValue.Version"/> against <see cref="Compare.Version"/> (0 for a missing key).</summary>
    Version = 0,

    /// <summary><see cref="KeyValue.CreateRevision"/> against <see cref="Compare.CreateRevision"/> (0 for a missing key).</summary>
    Create = 1,

    /// <summary><see cref="KeyValue.ModRevision"/> against <see cref="Compare.ModRevision"/> (0 for a missing key).</summary>
    Mod = 2,

    /// <summary>The value, byte-wise, against <see cref="Compare.Value"/>; a compare on a missing key is false whatever the relation.</summary>
    Value = 3,

    /// <summary><see cref="KeyValue.Lease"/> against <see cref="Compare.Lease"/> (0 for a missing key).</summary>
    Lease = 4,
}
