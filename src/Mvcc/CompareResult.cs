namespace EmbeddedRaft.Mvcc;

/// <summary>The relation a <see cref="Compare"/> tests (etcd's <c>Compare.CompareResult</c>, same numbers).</summary>
public enum CompareResult
{
    /// <summary>The key's field equals the compare's value.</summary>
    Equal = 0,

    /// <summary>The key's field is greater than the compare's value.</summary>
    Greater = 1,

    /// <summary>The key's field is less than the compare's value.</summary>
    Less = 2,

    /// <summary>The key's field differs from the compare's value.</summary>
    NotEqual = 3,
}
