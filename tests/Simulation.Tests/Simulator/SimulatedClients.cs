using System.Globalization;
using EmbeddedRaft;
using EmbeddedRaft.Consensus;
using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Mvcc;
using EmbeddedRaft.Mvcc.Replication;
using EmbeddedRaft.TestSupport.Linearizability;
using EmbeddedRaft.TestSupport.Simulation;

namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>
/// The simulated clients, each a task on the simulation's scheduler with its own seeded random,
/// behaving as real clients do: one operation at a time, a timeout after which the outcome is
/// unknown (indeterminate), a move to another member after a failure, a pause between operations.
/// KV clients put, delete, read (linearizable and serializable), range and compare-and-set a few
/// keys; a lease client grants leases, puts a key under each, keeps some alive and lets others
/// expire or revokes them; watchers follow the whole keyspace from revision 1 and resume from the
/// last revision + 1 when their member goes away; an admin compacts now and then.
/// </summary>
internal sealed class SimulatedClients(StoreSimulation sim, ClientHistory history)
{
    public static readonly TimeSpan CallTimeout = TimeSpan.FromMilliseconds(1500);
    private static readonly string[] Keys = ["k0", "k1", "k2", "k3"];

    private int _values;
    private long _latestRevision;

    // Closed (not completed) while the harness takes a quiescent point: no call starts then.
    private TaskCompletionSource _gate = CompletedGate();

    /// <summary>KV, lease and compaction calls started and not yet answered, timed out or refused.</summary>
    public int InFlight { get; private set; }

    /// <summary>From now on every client waits before its next call until <see cref="Resume"/>; calls already started run on.</summary>
    public void Pause()
    {
        if (_gate.Task.IsCompleted)
        {
            _gate = new TaskCompletionSource();
        }
    }

    /// <summary>Lets the clients call again.</summary>
    public void Resume() => _gate.TrySetResult();

    /// <summary>Starts every client; they run until <paramref name="stop"/> is cancelled (the watchers until <paramref name="stopWatchers"/>) and return within one call timeout.</summary>
    public List<Task> StartAll(CancellationToken stop, CancellationToken stopWatchers)
    {
        var tasks = new List<Task>();
        for (int c = 0; c < sim.Options.KvClients; c++)
        {
            int client = c;
            var random = new Random(sim.NextSeed());
            tasks.Add(sim.Scheduler.Run(() => KvClientAsync(client, random, stop)));
        }

        for (int c = 0; c < sim.Options.LeaseClients; c++)
        {
            int client = 100 + c;
            var random = new Random(sim.NextSeed());
            tasks.Add(sim.Scheduler.Run(() => LeaseClientAsync(client, random, stop)));
        }

        for (int w = 0; w < sim.Options.Watchers; w++)
        {
            var stream = new List<(ObservedEvent, long)>();
            history.WatchStreams.Add(stream);
            int watcher = w;
            var random = new Random(sim.NextSeed());
            tasks.Add(sim.Scheduler.Run(() => WatcherAsync(watcher, stream, random, stopWatchers)));
        }

        var admin = new Random(sim.NextSeed());
        tasks.Add(sim.Scheduler.Run(() => CompactorAsync(admin, stop)));
        return tasks;
    }

    /// <summary>One write after healing, through any member: the cluster must still make progress.</summary>
    public async Task<bool> ProbeProgressAsync(int client)
    {
        var random = new Random(client);
        for (int attempt = 0; attempt < 20; attempt++)
        {
            var member = Pick(random, null);
            if (member is null)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), sim.Time, CancellationToken.None);
                continue;
            }

            var request = EtcdKvRequest.Put(Keys[0], NewValue(client));
            if (await CallAsync(client, member, request, ReadConsistency.Linearizable) is not null)
            {
                return true;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), sim.Time, CancellationToken.None);
        }

        return false;
    }

    private async Task KvClientAsync(int client, Random random, CancellationToken stop)
    {
        SimulatedMember? member = null;
        string? lastSeen = null;
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(5, 60)), sim.Time, CancellationToken.None);
            member = Pick(random, member);
            if (member is null)
            {
                continue;
            }

            string key = Keys[random.Next(Keys.Length)];
            int roll = random.Next(100);
            var consistency = ReadConsistency.Linearizable;
            EtcdKvRequest request;
            if (roll < 30)
            {
                request = EtcdKvRequest.Put(key, NewValue(client));
            }
            else if (roll < 55)
            {
                request = EtcdKvRequest.Get(key);
            }
            else if (roll < 65)
            {
                request = EtcdKvRequest.Get(key);
                consistency = ReadConsistency.Serializable;
            }
            else if (roll < 73)
            {
                request = EtcdKvRequest.Delete(key);
            }
            else if (roll < 80)
            {
                request = EtcdKvRequest.Range("k0", "k9");
            }
            else
            {
                // Compare-and-set on what this client last saw (often stale: then it fails and reads).
                request = EtcdKvRequest.CompareValueAndPut(key, lastSeen ?? "none", NewValue(client));
            }

            var response = await CallAsync(client, member, request, consistency);
            if (response is null)
            {
                member = null;
                continue;
            }

            lastSeen = response.Results.SelectMany(r => r.Kvs).Select(kv => kv.Value).LastOrDefault() ?? lastSeen;

            // Now and then a client moves on, as load balancers move them.
            if (random.Next(10) == 0)
            {
                member = null;
            }
        }
    }

    /// <summary>
    /// Runs one KV call and records it: completed, or indeterminate (timed out, member gone), or —
    /// when the API says nothing happened — left out. Reads that fail are left out (they changed
    /// nothing). Returns the response, or null when the call did not complete.
    /// </summary>
    private async Task<EtcdKvResponse?> CallAsync(int client, SimulatedMember member, EtcdKvRequest request, ReadConsistency consistency)
    {
        await _gate.Task;
        InFlight++;
        try
        {
            return await CallOnceAsync(client, member, request, consistency);
        }
        finally
        {
            InFlight--;
        }
    }

    private async Task<EtcdKvResponse?> CallOnceAsync(int client, SimulatedMember member, EtcdKvRequest request, ReadConsistency consistency)
    {
        var store = member.Store;
        if (store is null)
        {
            return null;
        }

        bool isRead = request.Compares.Count == 0 && request.Success.All(o => o.Kind == EtcdKvOperationKind.Range);
        long invoked = sim.NowTicks;
        sim.Record(string.Create(CultureInfo.InvariantCulture, $"c{client} -> {member} {(consistency == ReadConsistency.Serializable ? "serializable " : string.Empty)}{request}"));
        Task<EtcdKvResponse> call;
        try
        {
            call = EtcdKvCalls.ExecuteAsync(store, request, consistency);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            sim.Record($"c{client} <- {member} refused at once: {e.GetType().Name}");
            return null;
        }

        try
        {
            var response = await sim.WithTimeout(call, CallTimeout);
            long completed = sim.NowTicks;
            sim.Record(string.Create(CultureInfo.InvariantCulture, $"c{client} <- {member} {response}"));
            if (consistency == ReadConsistency.Serializable)
            {
                history.SerializableReads.Add(new SerializableRead(client, member.Id, invoked, completed, request, response));
            }
            else
            {
                history.Add(Operation.Completed(client, invoked, completed, request, response));
            }

            _latestRevision = Math.Max(_latestRevision, response.Revision);
            return response;
        }
        catch (Exception e) when (e is InvariantViolationException)
        {
            sim.AddViolation($"c{client}: {request} on {member} broke an invariant: {e}");
            return null;
        }
        catch (MvccException e) when (e.Error == MvccError.LeaseNotFound && !isRead)
        {
            // A refusal is an answer the model checks: the lease was gone when the put applied.
            sim.Record($"c{client} <- {member} lease not found");
            history.Add(Operation.Completed(client, invoked, sim.NowTicks, request, EtcdKvResponse.Failure(EtcdKvError.LeaseNotFound)));
            return null;
        }
        catch (Exception e)
        {
            _ = call.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Current);
            if (isRead || IsDefiniteFailure(e))
            {
                sim.Record($"c{client} <- {member} failed: {e.GetType().Name}");
                if (!isRead)
                {
                    history.DefiniteFailures++;
                }
            }
            else
            {
                sim.Record($"c{client} <- {member} indeterminate: {e.GetType().Name}");
                history.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(client, invoked, request));
            }

            return null;
        }
    }

    /// <summary>
    /// Grants leases with ids it chooses (the model needs them), puts one key under each, keeps it
    /// alive a few rounds at a third of its TTL, then lets it expire or revokes it. Every call goes into
    /// the history (errors the store answers as answers), and each grant brings one indeterminate
    /// expiry the model may place anywhere after it.
    /// </summary>
    private async Task LeaseClientAsync(int client, Random random, CancellationToken stop)
    {
        SimulatedMember? member = null;
        int leases = 0;
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(50, 300)), sim.Time, CancellationToken.None);
            member = Pick(random, member);
            if (member is null)
            {
                continue;
            }

            long leaseId = ((client + 1) * 1_000_000L) + ++leases;
            long ttl = 1 + random.Next(2);
            // The expiry below is invoked with the grant: both on the same side of a quiescent point.
            await _gate.Task;
            long grantInvoked = sim.NowTicks;
            var grant = await RecordedCallAsync(client, member, EtcdKvRequest.LeaseGrant(leaseId, ttl), async store =>
            {
                var granted = await store.LeaseGrantAsync(ttl, leaseId, CancellationToken.None);
                return new EtcdKvResponse(granted.Header.Revision, true, [EtcdKvOperationResult.LeaseAnswer(granted.Id, granted.TtlSeconds)]);
            });
            if (grant is { Error: not EtcdKvError.None })
            {
                continue;
            }

            // Granted, or maybe: its expiry may come at any time after the grant.
            history.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(20_000 + (client * 1000) + leases, grantInvoked, EtcdKvRequest.LeaseExpiry(leaseId)));
            if (grant is null)
            {
                member = null;
                continue;
            }

            long grantedTtl = grant.Results[0].TtlSeconds;
            sim.Record($"c{client} lease {leaseId} granted, ttl {grantedTtl} s");
            string key = string.Create(CultureInfo.InvariantCulture, $"l{leaseId}");
            history.LeaseKeys.Add(new LeaseKey(leaseId, key, grantInvoked));
            if (await CallAsync(client, member, EtcdKvRequest.PutWithLease(key, NewValue(client), leaseId), ReadConsistency.Linearizable) is null)
            {
                member = null;
            }

            // Keep it alive for a while (at a third of its TTL), then let it expire or revoke it.
            int rounds = random.Next(0, 8);
            var interval = TimeSpan.FromSeconds(grantedTtl) / 3;
            for (int round = 0; round < rounds && !stop.IsCancellationRequested; round++)
            {
                await Task.Delay(interval, sim.Time, CancellationToken.None);
                member = Pick(random, member);
                if (member is null)
                {
                    continue;
                }

                await _gate.Task;
                long invoked = sim.NowTicks;
                var kept = await RecordedCallAsync(client, member, EtcdKvRequest.LeaseKeepAlive(leaseId), async store =>
                {
                    var answer = await store.LeaseKeepAliveAsync(leaseId, CancellationToken.None);
                    return new EtcdKvResponse(answer.Header.Revision, true, [EtcdKvOperationResult.LeaseAnswer(answer.Id, answer.TtlSeconds)]);
                });
                if (kept is null)
                {
                    member = null;
                    continue;
                }

                bool found = kept.Error == EtcdKvError.None;
                history.KeepAlives.Add(new KeepAliveOutcome(leaseId, invoked, sim.NowTicks, grantedTtl, found));
                if (!found)
                {
                    break;
                }
            }

            if (random.Next(3) == 0 && (member = Pick(random, member)) is not null)
            {
                history.RevokesInvoked.TryAdd(leaseId, sim.NowTicks);
                await RecordedCallAsync(client, member, EtcdKvRequest.LeaseRevoke(leaseId), async store =>
                {
                    var revoked = await store.LeaseRevokeAsync(leaseId, CancellationToken.None);
                    return new EtcdKvResponse(revoked.Header.Revision, true, []);
                });
            }
        }
    }

    /// <summary>
    /// One lease or compaction call, recorded: its answer, the store's refusals ("lease not found",
    /// "lease exists", "compacted", "future revision") as answers,
    /// indeterminate when it timed out or its member went away, left out when the API says nothing
    /// happened. Returns the answer, or null when there was none.
    /// </summary>
    private async Task<EtcdKvResponse?> RecordedCallAsync(int client, SimulatedMember member, EtcdKvRequest request, Func<ReplicatedStore, Task<EtcdKvResponse>> call)
    {
        await _gate.Task;
        InFlight++;
        try
        {
            return await RecordedCallOnceAsync(client, member, request, call);
        }
        finally
        {
            InFlight--;
        }
    }

    private async Task<EtcdKvResponse?> RecordedCallOnceAsync(int client, SimulatedMember member, EtcdKvRequest request, Func<ReplicatedStore, Task<EtcdKvResponse>> call)
    {
        if (member.Store is not { } store)
        {
            return null;
        }

        long invoked = sim.NowTicks;
        sim.Record($"c{client} -> {member} {request}");
        Task<EtcdKvResponse> running;
        try
        {
            running = call(store);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return null;
        }

        try
        {
            var response = await sim.WithTimeout(running, CallTimeout);
            sim.Record($"c{client} <- {member} {response}");
            history.Add(Operation.Completed(client, invoked, sim.NowTicks, request, response));
            return response;
        }
        catch (MvccException e) when (e is RevisionCompactedException or FutureRevisionException || e.Error is MvccError.LeaseNotFound or MvccError.LeaseExists)
        {
            var response = EtcdKvResponse.Failure(e switch
            {
                RevisionCompactedException => EtcdKvError.Compacted,
                FutureRevisionException => EtcdKvError.FutureRevision,
                _ when e.Error == MvccError.LeaseNotFound => EtcdKvError.LeaseNotFound,
                _ => EtcdKvError.LeaseExists,
            });
            sim.Record($"c{client} <- {member} {response}");
            history.Add(Operation.Completed(client, invoked, sim.NowTicks, request, response));
            return response;
        }
        catch (Exception e) when (e is InvariantViolationException)
        {
            sim.AddViolation($"c{client}: {request} on {member} broke an invariant: {e}");
            return null;
        }
        catch (Exception e)
        {
            _ = running.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Current);
            if (IsDefiniteFailure(e))
            {
                sim.Record($"c{client} <- {member} failed: {e.GetType().Name}");
            }
            else
            {
                sim.Record($"c{client} <- {member} indeterminate: {e.GetType().Name}");
                history.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(client, invoked, request));
            }

            return null;
        }
    }

    private async Task WatcherAsync(int watcher, List<(ObservedEvent Event, long ReceivedTicks)> stream, Random random, CancellationToken stop)
    {
        long next = 1;
        int streams = 0;
        string? previous = null;
        while (!stop.IsCancellationRequested)
        {
            var member = Pick(random, null);
            if (member?.Store is not { } store)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), sim.Time, CancellationToken.None);
                continue;
            }

            string id = string.Create(CultureInfo.InvariantCulture, $"w{watcher}.{++streams}");
            var responses = new List<WatchResponseObservation>();
            var end = WatchEnd.MemberStopped;
            long compactRevision = 0;
            long start = next;
            sim.Record($"{id} watching {member} from revision {next}");
            try
            {
                var request = new WatchRequest { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 }, StartRevision = next, PrevKv = true };
                using var watch = store.Watch(request);
                start = watch.StartRevision;
                await foreach (var response in watch.WithCancellation(stop))
                {
                    var events = new List<CommittedEvent>(response.Events.Count);
                    foreach (var e in response.Events)
                    {
                        var kv = e.Kv;
                        var observed = new ObservedEvent(kv.ModRevision, e.Type == WatchEventType.Delete, EtcdKvCalls.Text(kv.Key), EtcdKvCalls.Text(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease);
                        stream.Add((observed, sim.NowTicks));
                        var prev = e.PrevKv is { } p ? ToKeyValue(p) : null;
                        events.Add(observed.IsDelete ? CommittedEvent.Delete(observed.Key, kv.ModRevision, prev) : CommittedEvent.Put(ToKeyValue(kv), prev));
                        next = Math.Max(next, kv.ModRevision + 1);
                    }

                    responses.Add(new WatchResponseObservation(response.Header.Revision, events));
                    next = Math.Max(next, response.Header.Revision + 1);
                    if (response.Events.Count > 0)
                    {
                        sim.Record(string.Create(CultureInfo.InvariantCulture, $"{id} <- {member} revision {response.Header.Revision}: {response.Events.Count} events"));
                    }

                    // The member went away under the watch: resume elsewhere.
                    if (member.Store is null)
                    {
                        break;
                    }
                }

                sim.Record($"{id} stream on {member} ended");
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                end = WatchEnd.Cancelled;
            }
            catch (RevisionCompactedException e)
            {
                // Fell behind a compaction: the reference has a gap here; go on from what remains.
                sim.Record($"{id} compacted at {e.CompactRevision}");
                stream.Add((new ObservedEvent(-1, false, string.Empty, string.Empty, 0, 0, 0, 0), sim.NowTicks));
                end = WatchEnd.Compacted;
                compactRevision = e.CompactRevision;
                next = e.CompactRevision + 1;
            }
            catch (Exception e) when (e is not InvariantViolationException)
            {
                sim.Record($"{id} stream on {member} failed: {e.GetType().Name}");
            }

            history.WatchObservations.Add(new WatchObservation(id, member.Id, "\0", "\0", start, responses, end)
            {
                PrevKv = true,
                CompactRevision = compactRevision,
                ResumedFrom = end == WatchEnd.Compacted ? null : previous,
            });
            previous = end == WatchEnd.Compacted ? null : id;
            if (end == WatchEnd.Cancelled)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(5, 50)), sim.Time, CancellationToken.None);
        }
    }

    private static EtcdKeyValue ToKeyValue(KeyValue kv) =>
        new(EtcdKvCalls.Text(kv.Key), EtcdKvCalls.Text(kv.Value), kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease);

    private async Task CompactorAsync(Random random, CancellationToken stop)
    {
        const int admin = 900;
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(500, 1500)), sim.Time, CancellationToken.None);
            long target = _latestRevision - 30;
            if (target <= 1 || Pick(random, null) is not { } member)
            {
                continue;
            }

            await RecordedCallAsync(admin, member, EtcdKvRequest.Compact(target), async store =>
            {
                var compacted = await store.CompactAsync(target, cancellationToken: CancellationToken.None);
                return new EtcdKvResponse(compacted.Header.Revision, true, []);
            });
        }
    }

    private SimulatedMember? Pick(Random random, SimulatedMember? current)
    {
        if (current is { State: MemberState.Running, Store: not null })
        {
            return current;
        }

        var running = sim.Running.ToList();
        return running.Count == 0 ? null : running[random.Next(running.Count)];
    }

    private static TaskCompletionSource CompletedGate()
    {
        var gate = new TaskCompletionSource();
        gate.SetResult();
        return gate;
    }

    private string NewValue(int client) => string.Create(CultureInfo.InvariantCulture, $"c{client}-{++_values}");

    private static bool IsDefiniteFailure(Exception e) =>
        e is NoLeaderException or MvccException || (e is ProposalDroppedException dropped && dropped.Reason != ProposalDropReason.TimedOut);
}
