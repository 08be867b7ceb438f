using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// Generates one seeded sequence of lease requests mixed with the KV requests that use leases:
/// grants (chosen ids from a small set, so grants of an id in use, revokes and puts of unknown ids
/// happen; TTLs far above the recording's length, one above etcd's maximum, and TTL 1 — below etcd's
/// 2 s minimum — revoked by the very next request), revokes, time-to-live with and without keys,
/// lease lists, puts attaching keys to leases (unknown ones too), moving and detaching them (also
/// with ignore_lease), deletes, ranges that show each key's lease, and txns comparing leases and
/// putting with them.
/// </summary>
/// <remarks>
/// Not recorded: automatic ids (etcd picks them from its member id and the clock, so no two
/// recordings would agree) and keep-alives (a gRPC stream the JSON gateway does not answer one
/// request at a time). Remaining TTLs in time-to-live answers depend on how long etcd took; the
/// replay accepts a recorded TTL up to 60 s below its own (docs/etcd-compat.md).
/// </remarks>
internal sealed class LeaseOperationGenerator : ISequenceGenerator
{
    /// <summary>Above etcd's MaxLeaseTTL (9,000,000,000 s): "etcdserver: too large lease TTL".</summary>
    private const long TooLargeTtlSeconds = 9_000_000_001;

    private const int LeaseIds = 9;

    private static readonly byte[][] Keys = [.. new[] { "l/a", "l/b", "l/c", "l/d", "l/e", "m" }.Select(Encoding.UTF8.GetBytes)];
    private static readonly byte[] Prefix = Encoding.UTF8.GetBytes("l/");
    private static readonly byte[] PrefixEnd = Encoding.UTF8.GetBytes("l0");

    private readonly Random _random;
    private readonly Queue<GeneratedOperation> _followUps = new();

    public LeaseOperationGenerator(int seed)
    {
        _random = new Random(seed);
    }

    public GeneratedOperation Next()
    {
        if (_followUps.TryDequeue(out GeneratedOperation? followUp))
        {
            return followUp;
        }

        int roll = _random.Next(100);
        return roll switch
        {
            < 16 => Grant(),
            < 25 => Same("lease/revoke", new JsonObject { ["ID"] = Int64(AnyLease()) }),
            < 36 => Same("lease/timetolive", TimeToLive()),
            < 40 => Same("lease/leases", []),
            < 68 => Same("kv/put", Put()),
            < 75 => Same("kv/deleterange", Delete()),
            < 88 => Same("kv/range", new JsonObject { ["key"] = Base64(Prefix), ["range_end"] = Base64(PrefixEnd) }),
            _ => Same("kv/txn", Txn()),
        };
    }

    public void Observe(GeneratedOperation operation, GatewayResult result)
    {
    }

    private static GeneratedOperation Same(string path, JsonObject request) => new(path, request, (JsonObject)request.DeepClone());

    private static string Base64(byte[] bytes) => Convert.ToBase64String(bytes);

    private static string Int64(long value) => value.ToString(CultureInfo.InvariantCulture);

    private long AnyLease() => _random.Next(1, LeaseIds + 1);

    private GeneratedOperation Grant()
    {
        long id = AnyLease();
        int shape = _random.Next(20);
        if (shape == 0)
        {
            return Same("lease/grant", new JsonObject { ["TTL"] = Int64(TooLargeTtlSeconds), ["ID"] = Int64(id) });
        }

        if (shape == 1)
        {
            // Below the minimum: etcd grants its minimum instead. Revoked at once, before it can expire.
            _followUps.Enqueue(Same("lease/revoke", new JsonObject { ["ID"] = Int64(id) }));
            return Same("lease/grant", new JsonObject { ["TTL"] = "1", ["ID"] = Int64(id) });
        }

        return Same("lease/grant", new JsonObject { ["TTL"] = Int64(_random.Next(1000, 5000)), ["ID"] = Int64(id) });
    }

    private JsonObject TimeToLive()
    {
        var request = new JsonObject { ["ID"] = Int64(AnyLease()) };
        if (_random.Next(2) == 0)
        {
            request["keys"] = true;
        }

        return request;
    }

    private JsonObject Put()
    {
        var put = new JsonObject { ["key"] = Base64(Keys[_random.Next(Keys.Length)]), ["value"] = Base64(Encoding.UTF8.GetBytes($"v{_random.Next(100)}")) };
        if (_random.Next(8) == 0)
        {
            put["ignore_lease"] = true;
        }
        else if (_random.Next(4) != 0)
        {
            put["lease"] = Int64(AnyLease());
        }

        if (_random.Next(3) == 0)
        {
            put["prev_kv"] = true;
        }

        return put;
    }

    private JsonObject Delete() => _random.Next(4) == 0
        ? new JsonObject { ["key"] = Base64(Prefix), ["range_end"] = Base64(PrefixEnd) }
        : new JsonObject { ["key"] = Base64(Keys[_random.Next(Keys.Length)]) };

    private JsonObject Txn()
    {
        string key = Base64(Keys[_random.Next(Keys.Length)]);
        JsonObject PutWith(long lease)
        {
            var put = new JsonObject { ["key"] = key, ["value"] = Base64(Encoding.UTF8.GetBytes("t")) };
            if (lease != 0)
            {
                put["lease"] = Int64(lease);
            }

            return new JsonObject { ["request_put"] = put };
        }

        return new JsonObject
        {
            ["compare"] = new JsonArray(new JsonObject { ["key"] = key, ["target"] = "LEASE", ["result"] = _random.Next(2) == 0 ? "EQUAL" : "NOT_EQUAL", ["lease"] = Int64(AnyLease()) }),
            ["success"] = new JsonArray(PutWith(AnyLease())),
            ["failure"] = new JsonArray(PutWith(_random.Next(3) == 0 ? 0 : AnyLease())),
        };
    }
}
