using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>
/// The synced store's second thread: makes the batches the writer committed without a flush
/// durable (<see cref="BTreeDatabase.SyncCommitted"/>: flush, meta page, flush) while the writer
/// applies the next batch — group commit, pipelined.
/// </summary>
/// <remarks>
/// <para>The hand-over: the writer commits batch N to the B+tree with
/// <see cref="CommitDurability.NoSync"/> (its pages written, visible to new snapshots), then
/// <see cref="Request"/>s its durability and gets a sequence number. This thread syncs; one sync
/// covers every batch requested before it began, so batches handed over while a sync runs share the
/// next one. It publishes the highest durable sequence (<see cref="Durable"/>) and calls the
/// writer's wake-up. The writer, seeing a batch durable, notifies its watches and answers its
/// writers on its own thread, in batch order (StoreWriter). Nothing else runs here: this thread
/// touches no index, batch, watch or caller.</para>
/// <para>States, under <see cref="_gate"/>: idle (<see cref="_durable"/> == <see cref="_requested"/>),
/// syncing (a sync of every sequence up to a target under way), failed (final: a failed flush is
/// never retried, since the kernel may have dropped the pages it could not write; the B+tree refuses
/// every later write too), stopped (asked to stop with nothing left to sync, or failed).
/// Invariants: <see cref="_durable"/> &lt;= <see cref="_requested"/>; <see cref="_durable"/> never
/// decreases and never moves once failed.</para>
/// </remarks>
internal sealed class StoreCommitter
{
    private readonly object _gate = new();
    private readonly StoreState _state;
    private readonly Action _progressed;
    private readonly Thread _thread;
    private long _requested;
    private long _durable;
    private Exception? _failure;
    private bool _stopRequested;

    /// <param name="state">The store; its current <see cref="StoreState.Database"/> is synced (the
    /// writer hands nothing over while it replaces the database).</param>
    /// <param name="progressed">Called on this thread, without any lock held, after a sync succeeded or failed.</param>
    public StoreCommitter(StoreState state, Action progressed)
    {
        _state = state;
        _progressed = progressed;
        _thread = new Thread(Run) { IsBackground = true, Name = "MvccStore committer" };
        _thread.Start();
    }

    /// <summary>The highest sequence known durable (every batch requested up to it). Any thread.</summary>
    public long Durable => Volatile.Read(ref _durable);

    /// <summary>The sync failure, once one failed (final). Any thread.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>
    /// Asks for the batch the writer just committed (without a flush) to be made durable; returns
    /// its sequence, which <see cref="Durable"/> reaches once it is. Writer thread.
    /// </summary>
    /// <exception cref="InvariantViolationException">Called after <see cref="Stop"/>.</exception>
    public long Request()
    {
        lock (_gate)
        {
            if (_stopRequested)
            {
                throw new InvariantViolationException("MVCC committer: a batch handed over after the committer was stopped.");
            }

            _requested++;
            Monitor.PulseAll(_gate);
            return _requested;
        }
    }

    /// <summary>Blocks until <paramref name="sequence"/> is durable (returns null) or a sync failed (returns the failure). Writer thread.</summary>
    public Exception? WaitUntilDurable(long sequence)
    {
        lock (_gate)
        {
            if (sequence > _requested)
            {
                throw new InvariantViolationException($"MVCC committer: waiting for sequence {sequence}, only {_requested} requested.");
            }

            while (_durable < sequence && _failure is null)
            {
                Monitor.Wait(_gate);
            }

            return _failure;
        }
    }

    /// <summary>Stops the thread once every requested batch is synced (or a sync failed), and waits for it.</summary>
    public void Stop()
    {
        lock (_gate)
        {
            _stopRequested = true;
            Monitor.PulseAll(_gate);
        }

        _thread.Join();
    }

    private void Run()
    {
        while (true)
        {
            long target;
            lock (_gate)
            {
                while (_durable == _requested && !_stopRequested)
                {
                    Monitor.Wait(_gate);
                }

                if (_durable == _requested)
                {
                    return;
                }

                target = _requested;
            }

            Exception? failure = null;
            try
            {
                // Every batch up to target was committed before it was requested, so the latest
                // commit this makes durable includes them all.
                _state.Database.SyncCommitted();
            }
            catch (Exception e)
            {
                failure = e;
            }

            lock (_gate)
            {
                if (failure is null)
                {
                    Volatile.Write(ref _durable, target);
                }
                else
                {
                    Volatile.Write(ref _failure, failure);
                }

                Monitor.PulseAll(_gate);
            }

            _progressed();
            if (failure is not null)
            {
                return;
            }
        }
    }
}
