namespace EmbeddedRaft.Mvcc.Index;

/// <summary>
/// A position in the store's history, as etcd's <c>revision</c>: <see cref="Main"/> is the write
/// transaction's revision, <see cref="Sub"/> the change's place inside it (0, 1, ...). Ordered by
/// main, then sub.
/// </summary>
internal readonly record struct Revision(long Main, long Sub) : IComparable<Revision>
{
    public int CompareTo(Revision other)
    {
        int byMain = Main.CompareTo(other.Main);
        return byMain != 0 ? byMain : Sub.CompareTo(other.Sub);
    }

    public static bool operator <(Revision left, Revision right) => left.CompareTo(right) < 0;

    public static bool operator >(Revision left, Revision right) => left.CompareTo(right) > 0;

    public static bool operator <=(Revision left, Revision right) => left.CompareTo(right) <= 0;

    public static bool operator >=(Revision left, Revision right) => left.CompareTo(right) >= 0;

    public override string ToString() => $"{Main}.{Sub}";
}
