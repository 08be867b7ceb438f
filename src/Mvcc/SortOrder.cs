namespace EmbeddedRaft.Mvcc;

/// <summary>How a range sorts its results (etcd's <c>RangeRequest.SortOrder</c>, same numbers).</summary>
public enum SortOrder
{
    /// <summary>No sorting: results come in key order (unless <see cref="RangeRequest.SortTarget"/> is not <see cref="SortTarget.Key"/>, which sorts ascending, as etcd).</summary>
    None = 0,

    /// <summary>Ascending by <see cref="RangeRequest.SortTarget"/>; ties keep key order.</summary>
    Ascend = 1,

    /// <summary>Descending by <see cref="RangeRequest.SortTarget"/>; ties keep key order.</summary>
    Descend = 2,
}
