using System.Globalization;
using System.Text;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>
/// Wing and Gong's search with Lowe's memoization over one partition of a history (see
/// <see cref="LinearizabilityChecker"/>). One instance runs once.
/// </summary>
internal sealed class LinearizabilitySearch<TState, TInput, TOutput>
    where TInput : notnull
    where TOutput : class
{
    private const int PrefixShown = 20;

    private readonly ILinearizabilityModel<TState, TInput, TOutput> _model;
    private readonly IReadOnlyList<Operation<TInput, TOutput>> _history;
    private readonly List<int> _indices; // partition-local op number -> index in the history
    private readonly string? _key;
    private readonly SearchBudget _budget;
    private readonly Entry _head;

    // The deepest point the search reached, for the counterexample.
    private int[] _longestPrefix = [];
    private TState _stateAfterLongest;
    private int _unplaced = -1;
    private List<int> _pendingAtUnplaced = [];

    public LinearizabilitySearch(
        ILinearizabilityModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> history,
        List<int> indices,
        string? key,
        SearchBudget budget)
    {
        _model = model;
        _history = history;
        _indices = indices;
        _key = key;
        _budget = budget;
        _stateAfterLongest = model.Initial;
        _head = BuildList();
    }

    public LinearizabilityResult<TInput, TOutput> Run()
    {
        int count = _indices.Count;
        var linearized = new Bitset(count);
        var cache = new HashSet<CacheKey>(new CacheKeyComparer(_model.StateComparer));
        var stack = new Stack<(Entry Call, TState StateBefore)>();
        TState state = _model.Initial;
        Entry? entry = _head.Next;
        while (true)
        {
            if (entry is null)
            {
                // Only reachable with an empty list: every call's return follows it.
                return Success(stack);
            }

            if (!_budget.TryStep())
            {
                return Undecided(stack.Count);
            }

            Operation<TInput, TOutput> op = _history[_indices[entry.Op]];
            if (entry.IsCall)
            {
                if (_model.Step(state, op.Input, op.Output, out TState next))
                {
                    linearized.Set(entry.Op);
                    if (cache.Add(new CacheKey(linearized.Copy(), next, linearized.Hash())))
                    {
                        stack.Push((entry, state));
                        state = next;
                        entry.Lift();
                        if (stack.Count > _longestPrefix.Length)
                        {
                            _longestPrefix = stack.Reverse().Select(frame => frame.Call.Op).ToArray();
                            _stateAfterLongest = state;
                            _unplaced = -1;
                        }

                        entry = _head.Next;
                        continue;
                    }

                    linearized.Clear(entry.Op);
                }

                entry = entry.Next;
                continue;
            }

            // A return whose call is still in the list: its operation must be linearized by now.
            if (op.Indeterminate)
            {
                // Returns are in time order with the indeterminate ones last, so no definite
                // operation is left: the rest may take effect after everything, or never.
                return Success(stack);
            }

            if (stack.Count == _longestPrefix.Length && _unplaced < 0)
            {
                _unplaced = entry.Op;
                _pendingAtUnplaced = PendingCalls(entry);
            }

            if (stack.Count == 0)
            {
                return Failure();
            }

            (Entry call, TState before) = stack.Pop();
            state = before;
            linearized.Clear(call.Op);
            call.Unlift();
            entry = call.Next;
        }
    }

    private Entry BuildList()
    {
        var events = new List<Entry>(_indices.Count * 2);
        for (int local = 0; local < _indices.Count; local++)
        {
            Operation<TInput, TOutput> op = _history[_indices[local]];
            if (op.CompleteTicks is long complete && complete < op.InvokeTicks)
            {
                throw new ArgumentException($"Operation {_indices[local]} completes ({complete}) before it is invoked ({op.InvokeTicks}).", "history");
            }

            var call = new Entry(local, isCall: true, op.InvokeTicks);
            var ret = new Entry(local, isCall: false, op.CompleteTicks ?? long.MaxValue);
            call.Match = ret;
            events.Add(call);
            events.Add(ret);
        }

        // Time order; at equal times calls first (operations that touch in time are concurrent);
        // indeterminate returns (long.MaxValue) after every definite one.
        events.Sort(static (a, b) =>
        {
            int byTime = a.Ticks.CompareTo(b.Ticks);
            if (byTime != 0)
            {
                return byTime;
            }

            int byKind = b.IsCall.CompareTo(a.IsCall);
            return byKind != 0 ? byKind : a.Op.CompareTo(b.Op);
        });

        var head = new Entry(-1, isCall: false, long.MinValue);
        Entry last = head;
        foreach (Entry e in events)
        {
            last.Next = e;
            e.Prev = last;
            last = e;
        }

        return head;
    }

    private List<int> PendingCalls(Entry blockingReturn)
    {
        var pending = new List<int>();
        for (Entry? e = _head.Next; e is not null && e != blockingReturn; e = e.Next)
        {
            if (e.IsCall)
            {
                pending.Add(e.Op);
            }
        }

        return pending;
    }

    private LinearizabilityResult<TInput, TOutput> Success(Stack<(Entry Call, TState StateBefore)> stack)
    {
        List<Operation<TInput, TOutput>> order = stack.Reverse().Select(frame => _history[_indices[frame.Call.Op]]).ToList();
        return new LinearizabilityResult<TInput, TOutput>(
            LinearizabilityVerdict.Linearizable, _budget.Steps, partitionKey: null, [order], [], unplaced: null, "Linearizable.");
    }

    private LinearizabilityResult<TInput, TOutput> Undecided(int depth)
    {
        string text = $"Unknown: the search of {Partition()} ({_indices.Count} operations) stopped at its bound, {_budget.Describe()}, "
            + $"having linearized at most {_longestPrefix.Length} operations (at {depth} when it stopped).";
        return new LinearizabilityResult<TInput, TOutput>(LinearizabilityVerdict.Unknown, _budget.Steps, _key, [], [], unplaced: null, text);
    }

    private LinearizabilityResult<TInput, TOutput> Failure()
    {
        if (_unplaced < 0)
        {
            throw new InvariantViolationException("The linearizability search failed without recording the operation it could not place.");
        }

        List<Operation<TInput, TOutput>> prefix = _longestPrefix.Select(local => _history[_indices[local]]).ToList();
        Operation<TInput, TOutput> unplaced = _history[_indices[_unplaced]];
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"NOT linearizable: {Partition()} ({_indices.Count} operations, {_budget.Steps} steps).\n");
        text.Append(CultureInfo.InvariantCulture, $"Longest linearizable prefix: {prefix.Count} operations");
        int skipped = Math.Max(0, prefix.Count - PrefixShown);
        text.Append(skipped > 0 ? $" (the last {PrefixShown} shown)" : "").Append(":\n");
        if (skipped > 0)
        {
            text.Append("  ...\n");
        }

        for (int i = skipped; i < _longestPrefix.Length; i++)
        {
            text.Append("  ").Append(Describe(_longestPrefix[i])).Append('\n');
        }

        text.Append("State after it: ").Append(_model.DescribeState(_stateAfterLongest)).Append('\n');
        text.Append("Could not place: ").Append(Describe(_unplaced)).Append('\n');
        text.Append(CultureInfo.InvariantCulture, $"  it completed at {unplaced.CompleteTicks}, so it must be linearized before anything invoked later, ");
        text.Append(_model.Step(_stateAfterLongest, unplaced.Input, unplaced.Output, out _)
            ? "and no order of the pending operations lets it return what it did.\n"
            : "but the model does not allow it to return that from this state.\n");
        if (_pendingAtUnplaced.Count > 0)
        {
            text.Append("Operations that could have gone next (model accepts from this state?):\n");
            foreach (int local in _pendingAtUnplaced)
            {
                Operation<TInput, TOutput> op = _history[_indices[local]];
                bool accepted = _model.Step(_stateAfterLongest, op.Input, op.Output, out _);
                text.Append("  ").Append(Describe(local)).Append(accepted ? "  [accepted]" : "  [rejected]").Append('\n');
            }
        }

        return new LinearizabilityResult<TInput, TOutput>(LinearizabilityVerdict.NotLinearizable, _budget.Steps, _key, [], prefix, unplaced, text.ToString());
    }

    private string Partition() => _key is null ? "the history" : $"partition \"{_key}\"";

    private string Describe(int local)
    {
        int index = _indices[local];
        Operation<TInput, TOutput> op = _history[index];
        string end = op.CompleteTicks is long complete ? complete.ToString(CultureInfo.InvariantCulture) : "?";
        return string.Create(CultureInfo.InvariantCulture, $"#{index} client {op.ClientId} [{op.InvokeTicks}..{end}] {_model.Describe(op.Input, op.Output)}");
    }

    /// <summary>A call or return event in the doubly linked list the search walks.</summary>
    private sealed class Entry(int op, bool isCall, long ticks)
    {
        public int Op { get; } = op;

        public bool IsCall { get; } = isCall;

        public long Ticks { get; } = ticks;

        public Entry? Match { get; set; }

        public Entry? Prev { get; set; }

        public Entry? Next { get; set; }

        /// <summary>Takes this call and its return out of the list (the operation is linearized).</summary>
        public void Lift()
        {
            Entry match = Match!;
            Prev!.Next = Next;
            Next!.Prev = Prev; // a call always has its return after it
            match.Prev!.Next = match.Next;
            if (match.Next is not null)
            {
                match.Next.Prev = match.Prev;
            }
        }

        /// <summary>Puts this call and its return back where they were (undoing <see cref="Lift"/>, last lifted first).</summary>
        public void Unlift()
        {
            Entry match = Match!;
            match.Prev!.Next = match;
            if (match.Next is not null)
            {
                match.Next.Prev = match;
            }

            Prev!.Next = this;
            Next!.Prev = this;
        }
    }

    private readonly record struct CacheKey(ulong[] Linearized, TState State, int LinearizedHash);

    private sealed class CacheKeyComparer(IEqualityComparer<TState> states) : IEqualityComparer<CacheKey>
    {
        public bool Equals(CacheKey x, CacheKey y) =>
            x.LinearizedHash == y.LinearizedHash && x.Linearized.AsSpan().SequenceEqual(y.Linearized) && states.Equals(x.State, y.State);

        public int GetHashCode(CacheKey key) => HashCode.Combine(key.LinearizedHash, key.State is null ? 0 : states.GetHashCode(key.State));
    }

    /// <summary>The set of linearized operations.</summary>
    private sealed class Bitset(int count)
    {
        private readonly ulong[] _words = new ulong[(count + 63) / 64];

        public void Set(int bit) => _words[bit >> 6] |= 1UL << (bit & 63);

        public void Clear(int bit) => _words[bit >> 6] &= ~(1UL << (bit & 63));

        public ulong[] Copy() => (ulong[])_words.Clone();

        public int Hash()
        {
            var hash = new HashCode();
            foreach (ulong word in _words)
            {
                hash.Add(word);
            }

            return hash.ToHashCode();
        }
    }
}
