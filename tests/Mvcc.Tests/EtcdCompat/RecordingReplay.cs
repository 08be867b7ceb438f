using System.Text.Json.Nodes;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// Replays a recording against an MvccStore, request by request in recorded order, and collects
/// every answer that differs from etcd's: a different response (the first differing field is named),
/// an error where etcd answered, an answer where etcd refused, or a different error (gRPC code and
/// etcd's message). Replay goes on after a difference, so one report shows them all; differences
/// after the first may follow from it.
/// </summary>
internal static class RecordingReplay
{
    /// <summary>Replays <paramref name="recording"/> on a new store in <paramref name="directory"/> of
    /// <paramref name="fileSystem"/>, closing and reopening it after every <paramref name="reopenEvery"/>
    /// operations (0: never), so later answers also come from what the store rebuilt on open.</summary>
    public static async Task<IReadOnlyList<string>> RunAsync(EtcdRecording recording, IFileSystem fileSystem, string directory, int reopenEvery)
    {
        var differences = new List<string>();
        // The limits etcd ran with (its defaults, which are also MvccStore's): set, not assumed. The
        // lease clock stands still: no recorded lease may expire (see LeaseTtlWithinRecordingTime).
        var options = new MvccStoreOptions
        {
            MaxTxnOps = recording.MaxTxnOps,
            MaxRequestBytes = recording.MaxRequestBytes,
            Leases = new LeaseOptions { MinTtlSeconds = LeaseOptions.DefaultMinTtlSeconds, TimeProvider = new Microsoft.Extensions.Time.Testing.FakeTimeProvider() },
        };
        MvccStore store = MvccStore.Open(fileSystem, directory, options);
        try
        {
            foreach (RecordedOperation operation in recording.Operations)
            {
                if (reopenEvery > 0 && operation.Index > 0 && operation.Index % reopenEvery == 0)
                {
                    await store.DisposeAsync();
                    store = MvccStore.Open(fileSystem, directory, options);
                }

                if (await CompareAsync(store, operation) is string difference)
                {
                    differences.Add($"{recording.Name} {operation}: {difference}");
                }
            }
        }
        finally
        {
            await store.DisposeAsync();
        }

        return differences;
    }

    /// <summary>Runs one recorded request and returns how MvccStore's answer differs from etcd's, or null.</summary>
    public static async Task<string?> CompareAsync(MvccStore store, RecordedOperation operation)
    {
        JsonObject actual;
        try
        {
            actual = await ExecuteAsync(store, operation);
        }
        catch (MvccException e)
        {
            if (!operation.IsError)
            {
                return $"etcd answered {operation.Response!.ToJsonString()}, MvccStore threw {e.GetType().Name} (code {e.GrpcStatusCode}): {e.Message}";
            }

            return e.GrpcStatusCode == operation.ErrorCode && e.EtcdMessage == operation.ErrorMessage
                ? null
                : $"etcd refused with code {operation.ErrorCode} \"{operation.ErrorMessage}\", MvccStore with code {e.GrpcStatusCode} \"{e.EtcdMessage}\" ({e.GetType().Name})";
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException or NotImplementedException)
        {
            // Not an etcd error at all: always a difference, named with the exception.
            string etcd = operation.IsError ? $"refused with code {operation.ErrorCode} \"{operation.ErrorMessage}\"" : $"answered {operation.Response!.ToJsonString()}";
            return $"etcd {etcd}, MvccStore threw {e.GetType().Name}: {e.Message}";
        }

        if (operation.IsError)
        {
            return $"etcd refused with code {operation.ErrorCode} \"{operation.ErrorMessage}\", MvccStore answered {actual.ToJsonString()}";
        }

        if (operation.Op == "timetolive")
        {
            LeaseTtlWithinRecordingTime(operation.Response!, actual);
            LeaseKeysAsASet(operation.Response!, actual);
        }

        return JsonDifference.Find(operation.Response, actual);
    }

    /// <summary>
    /// etcd lists a lease's keys in Go map order (random from one call to the next); this store in key
    /// order. The same keys in another order count as equal; other keys stay a difference.
    /// </summary>
    private static void LeaseKeysAsASet(JsonObject recorded, JsonObject actual)
    {
        if (recorded["keys"] is JsonArray etcd && actual["keys"] is JsonArray store
            && etcd.Select(k => (string)k!).Order(StringComparer.Ordinal).SequenceEqual(store.Select(k => (string)k!).Order(StringComparer.Ordinal)))
        {
            actual["keys"] = etcd.DeepClone();
        }
    }

    /// <summary>
    /// A remaining TTL is the one thing etcd's answers owe to its clock: etcd answered after the
    /// seconds the recording took since the grant, this store on a clock that stands still. A recorded
    /// TTL at most 60 s below the store's (and still positive) counts as equal; any other stays a difference.
    /// </summary>
    private static void LeaseTtlWithinRecordingTime(JsonObject recorded, JsonObject actual)
    {
        if (recorded["TTL"] is JsonNode etcdNode && actual["TTL"] is JsonNode storeNode)
        {
            long etcd = long.Parse((string)etcdNode!, System.Globalization.CultureInfo.InvariantCulture);
            long store = long.Parse((string)storeNode!, System.Globalization.CultureInfo.InvariantCulture);
            if (etcd > 0 && etcd <= store && store - etcd <= 60)
            {
                actual["TTL"] = etcdNode.DeepClone();
            }
        }
    }

    private static async Task<JsonObject> ExecuteAsync(MvccStore store, RecordedOperation operation) => operation.Op switch
    {
        "range" => EtcdJsonResponses.Range(store.Range(EtcdJsonRequests.Range(operation.Request))),
        "put" => EtcdJsonResponses.Put(await store.PutAsync(EtcdJsonRequests.Put(operation.Request))),
        "deleterange" => EtcdJsonResponses.DeleteRange(await store.DeleteRangeAsync(EtcdJsonRequests.DeleteRange(operation.Request))),
        "txn" => EtcdJsonResponses.Txn(await store.TxnAsync(EtcdJsonRequests.Txn(operation.Request))),
        "compaction" => EtcdJsonResponses.Compact(await store.CompactAsync(EtcdJsonRequests.CompactionRevision(operation.Request), EtcdJsonRequests.CompactionPhysical(operation.Request))),
        "grant" => EtcdJsonResponses.LeaseGrant(await store.LeaseGrantAsync(EtcdJsonRequests.LeaseTtl(operation.Request), EtcdJsonRequests.LeaseId(operation.Request))),
        "revoke" => EtcdJsonResponses.LeaseRevoke(await store.LeaseRevokeAsync(EtcdJsonRequests.LeaseId(operation.Request))),
        "timetolive" => EtcdJsonResponses.LeaseTimeToLive(store.LeaseTimeToLive(EtcdJsonRequests.LeaseId(operation.Request), EtcdJsonRequests.LeaseKeys(operation.Request))),
        "leases" => EtcdJsonResponses.LeaseLeases(store.LeaseLeases()),
        _ => throw new InvalidDataException($"Unknown operation '{operation.Op}' in the recording."),
    };
}
