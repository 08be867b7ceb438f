namespace EmbeddedRaft.Mvcc.Watch;

/// <summary>
/// The watched ranges (etcd's <c>adt.IntervalTree</c> of its watcher group): a treap of distinct
/// ranges [start, end) ordered by (start, end), each node keeping the largest end in its subtree, so
/// finding the ranges that hold a key visits O(log n + matches) nodes, never every range.
/// </summary>
/// <remarks>
/// An end of null is "every key &gt;= start" (etcd's range end "\0") and is above every key.
/// Priorities come from a fixed-seed generator: the shape is random but the same in every run.
/// Not thread-safe: the hub changes and reads it under its lock.
/// </remarks>
internal sealed class RangeTree
{
    private Node? _root;
    private ulong _priorityState = 0x9E3779B97F4A7C15UL;

    /// <summary>Distinct ranges in the tree.</summary>
    public int Count { get; private set; }

    /// <summary>The group of the range [<paramref name="start"/>, <paramref name="end"/>), added (empty) when absent.</summary>
    public WatcherGroup GetOrAdd(byte[] start, byte[]? end)
    {
        WatcherGroup? found = null;
        _root = Insert(_root, start, end, ref found);
        return found!;
    }

    /// <summary>Removes the range of <paramref name="group"/>, which must be in the tree.</summary>
    public void Remove(WatcherGroup group)
    {
        bool removed = false;
        _root = Delete(_root, group, ref removed);
        if (!removed)
        {
            throw new InvariantViolationException($"MVCC watch: removing range [{MvccText.Show(group.Key)}, {(group.End is null ? "end" : MvccText.Show(group.End))}), which is not in the range tree.");
        }

        Count--;
    }

    /// <summary>Adds to <paramref name="into"/> every range's group, in range order (a walk of the whole tree: for a few ranges).</summary>
    public void CollectAll(List<WatcherGroup> into) => CollectAll(_root, into);

    /// <summary>Adds to <paramref name="into"/> the group of every range that holds <paramref name="key"/>.</summary>
    public void Stab(ReadOnlySpan<byte> key, List<WatcherGroup> into) => Stab(_root, key, into);

    private static void CollectAll(Node? node, List<WatcherGroup> into)
    {
        while (node is not null)
        {
            CollectAll(node.Left, into);
            into.Add(node.Group);
            node = node.Right;
        }
    }

    private static void Stab(Node? node, ReadOnlySpan<byte> key, List<WatcherGroup> into)
    {
        while (node is not null)
        {
            // Every range below ends at or before the key: none holds it.
            if (!EndsAfter(node.MaxEnd, key))
            {
                return;
            }

            Stab(node.Left, key, into);
            if (key.SequenceCompareTo(node.Group.Key) < 0)
            {
                // The right subtree's ranges start at or after this one, after the key.
                return;
            }

            if (EndsAfter(node.Group.End, key))
            {
                into.Add(node.Group);
            }

            node = node.Right;
        }
    }

    /// <summary>True when a range ending at <paramref name="end"/> (null: never) ends after <paramref name="key"/>.</summary>
    private static bool EndsAfter(byte[]? end, ReadOnlySpan<byte> key) => end is null || key.SequenceCompareTo(end) < 0;

    private static int CompareEnds(byte[]? a, byte[]? b) => a is null ? (b is null ? 0 : 1) : b is null ? -1 : a.AsSpan().SequenceCompareTo(b);

    private static int CompareRanges(byte[] start, byte[]? end, WatcherGroup other)
    {
        int byStart = start.AsSpan().SequenceCompareTo(other.Key);
        return byStart != 0 ? byStart : CompareEnds(end, other.End);
    }

    private Node Insert(Node? node, byte[] start, byte[]? end, ref WatcherGroup? found)
    {
        if (node is null)
        {
            found = new WatcherGroup(start, end);
            Count++;
            return new Node(found, NextPriority());
        }

        int order = CompareRanges(start, end, node.Group);
        if (order == 0)
        {
            found = node.Group;
            return node;
        }

        if (order < 0)
        {
            node.Left = Insert(node.Left, start, end, ref found);
            if (node.Left.Priority > node.Priority)
            {
                return RotateRight(node);
            }
        }
        else
        {
            node.Right = Insert(node.Right, start, end, ref found);
            if (node.Right.Priority > node.Priority)
            {
                return RotateLeft(node);
            }
        }

        node.Update();
        return node;
    }

    private static Node? Delete(Node? node, WatcherGroup group, ref bool removed)
    {
        if (node is null)
        {
            return null;
        }

        if (!ReferenceEquals(node.Group, group))
        {
            int order = CompareRanges(group.Key, group.End, node.Group);
            if (order == 0)
            {
                return node;
            }

            if (order < 0)
            {
                node.Left = Delete(node.Left, group, ref removed);
            }
            else
            {
                node.Right = Delete(node.Right, group, ref removed);
            }

            node.Update();
            return node;
        }

        removed = true;
        return Merge(node.Left, node.Right);
    }

    /// <summary>Joins two treaps whose every range in <paramref name="left"/> orders before every one in <paramref name="right"/>.</summary>
    private static Node? Merge(Node? left, Node? right)
    {
        if (left is null)
        {
            return right;
        }

        if (right is null)
        {
            return left;
        }

        if (left.Priority > right.Priority)
        {
            left.Right = Merge(left.Right, right);
            left.Update();
            return left;
        }

        right.Left = Merge(left, right.Left);
        right.Update();
        return right;
    }

    private static Node RotateRight(Node node)
    {
        var left = node.Left!;
        node.Left = left.Right;
        node.Update();
        left.Right = node;
        left.Update();
        return left;
    }

    private static Node RotateLeft(Node node)
    {
        var right = node.Right!;
        node.Right = right.Left;
        node.Update();
        right.Left = node;
        right.Update();
        return right;
    }

    private ulong NextPriority()
    {
        // xorshift64*: deterministic, no shared Random.
        _priorityState ^= _priorityState >> 12;
        _priorityState ^= _priorityState << 25;
        _priorityState ^= _priorityState >> 27;
        return _priorityState * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>Invariant: <see cref="MaxEnd"/> is the largest end of this node's subtree (null when any is null).</summary>
    private sealed class Node(WatcherGroup group, ulong priority)
    {
        public WatcherGroup Group { get; } = group;

        public ulong Priority { get; } = priority;

        public Node? Left { get; set; }

        public Node? Right { get; set; }

        public byte[]? MaxEnd { get; private set; } = group.End;

        public void Update()
        {
            var max = Group.End;
            if (Left is not null && CompareEnds(Left.MaxEnd, max) > 0)
            {
                max = Left.MaxEnd;
            }

            if (Right is not null && CompareEnds(Right.MaxEnd, max) > 0)
            {
                max = Right.MaxEnd;
            }

            MaxEnd = max;
        }
    }
}
