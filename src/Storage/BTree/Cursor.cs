namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// Walks a <see cref="Bucket"/>'s keys in byte-wise order. Position it with <see cref="First"/>,
/// <see cref="Last"/> or <see cref="Seek"/>, then move with <see cref="Next"/> and <see cref="Previous"/>;
/// each returns false when there is no such entry (the cursor is then unpositioned).
/// </summary>
/// <remarks>
/// <see cref="Key"/> and <see cref="Value"/> are valid until the transaction ends. A change to the
/// bucket makes the cursor throw <see cref="InvalidOperationException"/> until positioned again.
/// Not thread-safe. Moving allocates nothing.
/// </remarks>
public sealed class Cursor
{
    private readonly Bucket _bucket;
    private readonly Transaction _tx;
    private readonly CursorFrame[] _stack = new CursorFrame[Tree.MaxDepth];
    private int _depth;
    private bool _positioned;
    private int _version;

    internal Cursor(Bucket bucket, Transaction tx)
    {
        _bucket = bucket;
        _tx = tx;
    }

    /// <summary>True when the cursor is on an entry.</summary>
    public bool IsPositioned => _positioned;

    /// <summary>The key of the current entry.</summary>
    /// <exception cref="InvalidOperationException">The cursor is not positioned, or the bucket changed.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    public ReadOnlySpan<byte> Key
    {
        get
        {
            ThrowIfNotPositioned();
            ref readonly var leaf = ref _stack[_depth - 1];
            return Tree.FrameKey(leaf, leaf.Index);
        }
    }

    /// <summary>The value of the current entry.</summary>
    /// <exception cref="InvalidOperationException">The cursor is not positioned, or the bucket changed.</exception>
    /// <exception cref="ObjectDisposedException">The transaction has ended.</exception>
    /// <exception cref="CorruptionException">The value's overflow pages failed their checksum.</exception>
    public ReadOnlySpan<byte> Value
    {
        get
        {
            ThrowIfNotPositioned();
            ref readonly var leaf = ref _stack[_depth - 1];
            return _bucket.Tree.FrameValue(leaf, leaf.Index);
        }
    }

    /// <summary>Moves to the smallest key; false when the bucket is empty.</summary>
    public bool First()
    {
        if (!Start())
        {
            return false;
        }

        DescendToEdge(first: true);
        return SettleForward();
    }

    /// <summary>Moves to the largest key; false when the bucket is empty.</summary>
    public bool Last()
    {
        if (!Start())
        {
            return false;
        }

        DescendToEdge(first: false);
        return SettleBackward();
    }

    /// <summary>Moves to the first key &gt;= <paramref name="key"/>; false when there is none.</summary>
    public bool Seek(ReadOnlySpan<byte> key)
    {
        if (!Start())
        {
            return false;
        }

        var tree = _bucket.Tree;
        while (!_stack[_depth - 1].IsLeaf)
        {
            ref var top = ref _stack[_depth - 1];
            top.Index = Tree.FrameBranchSearch(top, key);
            Push(tree.ChildFrame(top, top.Index));
        }

        ref var leaf = ref _stack[_depth - 1];
        leaf.Index = Tree.FrameLowerBound(leaf, key);
        return SettleForward();
    }

    /// <summary>Moves to the next key; false (and unpositioned) past the last one.</summary>
    /// <exception cref="InvalidOperationException">The cursor is not positioned, or the bucket changed.</exception>
    public bool Next()
    {
        ThrowIfNotPositioned();
        _stack[_depth - 1].Index++;
        return SettleForward();
    }

    /// <summary>Moves to the previous key; false (and unpositioned) before the first one.</summary>
    /// <exception cref="InvalidOperationException">The cursor is not positioned, or the bucket changed.</exception>
    public bool Previous()
    {
        ThrowIfNotPositioned();
        _stack[_depth - 1].Index--;
        return SettleBackward();
    }

    private bool Start()
    {
        _bucket.ThrowIfUnusable();
        _positioned = false;
        _depth = 0;
        _version = _bucket.Tree.Version;
        if (!_bucket.Tree.TryRootFrame(out var root))
        {
            return false;
        }

        Push(root);
        return true;
    }

    private void Push(CursorFrame frame)
    {
        if (_depth == _stack.Length)
        {
            throw _tx.Database.TooDeep(_bucket.Tree.RootPageId);
        }

        _stack[_depth++] = frame;
    }

    /// <summary>From the top frame, descends to the first (or last) leaf entry below it.</summary>
    private void DescendToEdge(bool first)
    {
        var tree = _bucket.Tree;
        while (true)
        {
            ref var top = ref _stack[_depth - 1];
            top.Index = first ? 0 : top.Count - 1;
            if (top.IsLeaf)
            {
                return;
            }

            Push(tree.ChildFrame(top, top.Index));
        }
    }

    /// <summary>Makes the leaf index valid, moving to following leaves when it is past the end.</summary>
    private bool SettleForward()
    {
        while (true)
        {
            ref var leaf = ref _stack[_depth - 1];
            if (leaf.Index < leaf.Count)
            {
                _positioned = true;
                return true;
            }

            // Climb to the first ancestor with a next child, then take its leftmost leaf.
            do
            {
                _depth--;
            }
            while (_depth > 0 && _stack[_depth - 1].Index + 1 >= _stack[_depth - 1].Count);

            if (_depth == 0)
            {
                _positioned = false;
                return false;
            }

            ref var parent = ref _stack[_depth - 1];
            parent.Index++;
            Push(_bucket.Tree.ChildFrame(parent, parent.Index));
            DescendToEdge(first: true);
        }
    }

    private bool SettleBackward()
    {
        while (true)
        {
            ref var leaf = ref _stack[_depth - 1];
            if (leaf.Index >= 0 && leaf.Count > 0)
            {
                _positioned = true;
                return true;
            }

            do
            {
                _depth--;
            }
            while (_depth > 0 && _stack[_depth - 1].Index <= 0);

            if (_depth == 0)
            {
                _positioned = false;
                return false;
            }

            ref var parent = ref _stack[_depth - 1];
            parent.Index--;
            Push(_bucket.Tree.ChildFrame(parent, parent.Index));
            DescendToEdge(first: false);
        }
    }

    private void ThrowIfNotPositioned()
    {
        _bucket.ThrowIfUnusable();
        if (_version != _bucket.Tree.Version)
        {
            _positioned = false;
            throw new InvalidOperationException("The bucket changed since the cursor was positioned; position it again with First, Last or Seek.");
        }

        if (!_positioned)
        {
            throw new InvalidOperationException("The cursor is not positioned on an entry.");
        }
    }
}
