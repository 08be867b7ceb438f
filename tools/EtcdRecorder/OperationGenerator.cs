using System.Globalization;
using System.Text.Json.Nodes;

namespace EmbeddedRaft.EtcdRecorder;

/// <summary>
/// Generates one seeded sequence of KV requests: puts, delete ranges, ranges of every shape, txns
/// (every compare target and result, ranges in compares, nested txns), compactions, and the requests
/// etcd refuses (empty key, ignore_value misuse, duplicate keys and too many operations in a txn, an
/// oversized request, compacted and future revisions). The revisions it picks follow what etcd
/// answered (<see cref="Observe"/>), so the same seed against the same etcd yields the same sequence.
/// </summary>
/// <remarks>Not thread-safe: one generator per sequence.</remarks>
internal sealed class OperationGenerator : ISequenceGenerator
{
    /// <summary>etcd 3.4's default --max-txn-ops.</summary>
    public const int MaxTxnOperations = 128;

    /// <summary>Larger than etcd's default --max-request-bytes (1.5 MiB) and smaller than its gRPC
    /// receive limit (that plus 512 KiB), so etcd answers "request is too large".</summary>
    private const int OversizedValueBytes = 1_700_000;

    private static readonly string[] SortOrders = ["NONE", "ASCEND", "DESCEND"];
    private static readonly string[] SortTargets = ["KEY", "VERSION", "CREATE", "MOD", "VALUE"];
    private static readonly string[] CompareTargets = ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"];
    private static readonly string[] CompareResults = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"];

    /// <summary>A put of this size (a 1.5 MiB request limit minus margin) must be accepted.</summary>
    private const int LargeValueBytes = 1_400_000;

    /// <summary>Longer than a B+tree key may be (511 bytes): etcd takes it, so must a store that keys
    /// its B+tree by revision.</summary>
    private const int LongKeyBytes = 600;

    private readonly Random _random;

    /// <summary>Follow-ups of a probe that spans several requests, sent before anything new.</summary>
    private readonly Queue<GeneratedOperation> _followUps = new();
    private long _revision = 1;
    private long _compactRevision;
    private int _oversizedPuts;

    public OperationGenerator(int seed)
    {
        _random = new Random(seed);
    }

    public GeneratedOperation Next()
    {
        if (_followUps.TryDequeue(out GeneratedOperation? followUp))
        {
            return followUp;
        }

        int roll = _random.Next(1000);
        return roll switch
        {
            < 350 => Same("kv/put", Put(_random.Next(20) == 0)),
            < 430 => Same("kv/deleterange", DeleteRange()),
            < 700 => Same("kv/range", Range()),
            < 930 => Same("kv/txn", Txn()),
            < 955 => Compaction(),
            < 980 => Refused(),
            _ => Probe(),
        };
    }

    /// <summary>Learns the store's revision and compaction point from etcd's answer.</summary>
    public void Observe(GeneratedOperation operation, GatewayResult result)
    {
        if (result.Response?["header"]?["revision"] is JsonNode revision)
        {
            _revision = long.Parse(revision.GetValue<string>(), CultureInfo.InvariantCulture);
        }

        if (!result.IsError && operation.Name == "compaction")
        {
            _compactRevision = Revision(operation.Request["revision"]!);
        }
    }

    private static GeneratedOperation Same(string path, JsonObject request) => new(path, request, (JsonObject)request.DeepClone());

    private static string Base64(byte[] bytes) => Convert.ToBase64String(bytes);

    private static string Int64(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static long Revision(JsonNode node) => long.Parse(node.GetValue<string>(), CultureInfo.InvariantCulture);

    private T Pick<T>(IReadOnlyList<T> items) => items[_random.Next(items.Count)];

    private bool Chance(int percent) => _random.Next(100) < percent;

    private byte[] Value()
    {
        if (Chance(15))
        {
            byte[] random = new byte[_random.Next(1, 24)];
            _random.NextBytes(random);
            return random;
        }

        return Pick(KeySpace.Values);
    }

    /// <summary>A revision around the interesting part of history: below, at and above the
    /// compaction point, recent ones, the current one and one or two past it.</summary>
    private long NearbyRevision()
    {
        return _random.Next(6) switch
        {
            0 => _random.NextInt64(1, _revision + 1),
            1 => Math.Max(1, _compactRevision + _random.Next(-1, 2)),
            2 => _revision + _random.Next(1, 3),
            _ => Math.Max(1, _revision - _random.Next(0, 6)),
        };
    }

    private JsonObject Put(bool leaseOptions)
    {
        var put = new JsonObject { ["key"] = Base64(Pick(KeySpace.Keys)) };
        bool ignoreValue = leaseOptions && Chance(50);
        if (!ignoreValue)
        {
            byte[] value = Value();
            if (value.Length > 0)
            {
                put["value"] = Base64(value);
            }
        }
        else
        {
            put["ignore_value"] = true;
        }

        if (Chance(50))
        {
            put["prev_kv"] = true;
        }

        if (leaseOptions && Chance(50))
        {
            put["ignore_lease"] = true;
        }

        return put;
    }

    /// <summary>A key range in one of etcd's shapes: a single key, [key, end), a prefix, every key
    /// >= key ("\0" end), or the whole keyspace ("\0", "\0").</summary>
    private (byte[] Key, byte[] End) KeyRange(bool withinOnePrefix, bool mostlyOneKey = false)
    {
        // Deletes mostly take one key, or most of what the sequence wrote would be gone at once.
        int shape = withinOnePrefix ? _random.Next(2) : mostlyOneKey && Chance(60) ? 1 : _random.Next(10);
        switch (shape)
        {
            case 0:
                byte[] prefix = Pick(KeySpace.Prefixes);
                return (prefix, KeySpace.PrefixEnd(prefix));
            case 1 or 2 or 3:
                return (Pick(KeySpace.Keys), []);
            case 4 or 5:
                byte[] a = Pick(KeySpace.Keys);
                byte[] b = Pick(KeySpace.Keys);
                // Mostly ordered; sometimes end <= key, which etcd answers with nothing.
                return a.AsSpan().SequenceCompareTo(b) <= 0 || Chance(20) ? (a, b) : (b, a);
            case 6 or 7 or 8:
                return (Pick(KeySpace.Keys), [0x00]);
            default:
                return ([0x00], [0x00]);
        }
    }

    private static void SetRange(JsonObject request, (byte[] Key, byte[] End) range)
    {
        request["key"] = Base64(range.Key);
        if (range.End.Length > 0)
        {
            request["range_end"] = Base64(range.End);
        }
    }

    private JsonObject DeleteRange()
    {
        var delete = new JsonObject();
        SetRange(delete, KeyRange(withinOnePrefix: false, mostlyOneKey: true));
        if (Chance(50))
        {
            delete["prev_kv"] = true;
        }

        return delete;
    }

    private JsonObject Range()
    {
        var range = new JsonObject();
        bool sorted = Chance(35);
        string target = sorted ? Pick(SortTargets) : "KEY";
        // A non-key target is sorted by etcd even with order NONE; keep those within one prefix (see KeySpace).
        SetRange(range, KeyRange(withinOnePrefix: target != "KEY"));
        if (Chance(30))
        {
            range["revision"] = Int64(NearbyRevision());
        }

        if (Chance(30))
        {
            range["limit"] = Int64(_random.Next(1, 6));
        }

        if (Chance(10))
        {
            range["count_only"] = true;
        }
        else if (Chance(15))
        {
            range["keys_only"] = true;
        }

        if (sorted)
        {
            range["sort_order"] = Pick(SortOrders);
            range["sort_target"] = target;
        }

        foreach (string filter in new[] { "min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision" })
        {
            if (Chance(8))
            {
                range[filter] = Int64(NearbyRevision());
            }
        }

        return range;
    }

    private JsonObject Compare()
    {
        string target = Pick(CompareTargets);
        var compare = new JsonObject { ["target"] = target, ["result"] = Pick(CompareResults) };
        bool overRange = Chance(20);
        SetRange(compare, overRange ? KeyRange(withinOnePrefix: true) : (Pick(KeySpace.Keys), []));
        switch (target)
        {
            case "VERSION":
                compare["version"] = Int64(_random.Next(0, 4));
                break;
            case "CREATE":
                compare["create_revision"] = Int64(Chance(20) ? 0 : NearbyRevision());
                break;
            case "MOD":
                compare["mod_revision"] = Int64(Chance(20) ? 0 : NearbyRevision());
                break;
            case "VALUE":
                compare["value"] = Base64(Pick(KeySpace.Values));
                break;
            default:
                compare["lease"] = Int64(Chance(80) ? 0 : 7);
                break;
        }

        return compare;
    }

    private JsonObject Txn() => Txn(new TxnWrites(), depth: 0);

    private JsonObject Txn(TxnWrites writes, int depth)
    {
        var txn = new JsonObject();
        var compares = new JsonArray();
        for (int i = _random.Next(4); i > 0; i--)
        {
            compares.Add(Compare());
        }

        if (compares.Count > 0)
        {
            txn["compare"] = compares;
        }

        foreach (string branch in new[] { "success", "failure" })
        {
            var ops = new JsonArray();
            for (int i = _random.Next(5); i > 0; i--)
            {
                ops.Add(RequestOp(writes, depth));
            }

            if (ops.Count > 0)
            {
                txn[branch] = ops;
            }
        }

        return txn;
    }

    /// <summary>A txn operation that writes no key another write of the same txn touches, so the txn is
    /// valid; <see cref="Refused"/> makes the conflicting ones on purpose.</summary>
    private JsonObject RequestOp(TxnWrites writes, int depth)
    {
        int roll = _random.Next(100);
        if (roll < 40 && writes.FreeKey(KeySpace.Keys, _random) is byte[] putKey)
        {
            writes.Puts.Add(putKey);
            JsonObject put = Put(leaseOptions: false);
            put["key"] = Base64(putKey);
            return new JsonObject { ["request_put"] = put };
        }

        if (roll < 60)
        {
            (byte[] Key, byte[] End) range = KeyRange(withinOnePrefix: false, mostlyOneKey: true);
            if (writes.CanDelete(range))
            {
                writes.Deletes.Add(range);
                var delete = new JsonObject();
                SetRange(delete, range);
                if (Chance(50))
                {
                    delete["prev_kv"] = true;
                }

                return new JsonObject { ["request_delete_range"] = delete };
            }
        }

        if (roll >= 88 && depth < 2)
        {
            return new JsonObject { ["request_txn"] = Txn(writes, depth + 1) };
        }

        return new JsonObject { ["request_range"] = Range() };
    }

    private GeneratedOperation Compaction()
    {
        long revision = _random.Next(10) switch
        {
            0 when _compactRevision > 0 => _random.NextInt64(1, _compactRevision + 1),
            1 => _revision + _random.Next(1, 3),
            _ => _random.NextInt64(Math.Max(1, _compactRevision + 1), _revision + 1),
        };
        var compaction = new JsonObject { ["revision"] = Int64(revision) };
        if (Chance(50))
        {
            compaction["physical"] = true;
        }

        return Same("kv/compaction", compaction);
    }

    /// <summary>Requests etcd refuses (and one it accepts at the limit).</summary>
    private GeneratedOperation Refused()
    {
        switch (_random.Next(11))
        {
            case 0:
                return Same("kv/put", new JsonObject { ["value"] = Base64(Value()) });
            case 1:
                return Same("kv/range", new JsonObject { ["range_end"] = Base64([0x00]) });
            case 2:
                return Same("kv/deleterange", new JsonObject());
            case 3:
                return Same("kv/put", new JsonObject
                {
                    ["key"] = Base64(Pick(KeySpace.Keys)),
                    ["value"] = Base64([.. "v1"u8]),
                    ["ignore_value"] = true,
                });
            case 4:
            {
                // Exactly the limit is accepted; one more is refused.
                int count = MaxTxnOperations + _random.Next(2);
                var ops = new JsonArray();
                for (int i = 0; i < count; i++)
                {
                    ops.Add(new JsonObject { ["request_range"] = new JsonObject { ["key"] = Base64(Pick(KeySpace.Keys)) } });
                }

                return Same("kv/txn", new JsonObject { [Chance(50) ? "success" : "failure"] = ops });
            }

            case 5 or 6:
                return Same("kv/txn", DuplicateKeyTxn());
            case 7 when _oversizedPuts < 2:
            {
                _oversizedPuts++;
                byte fill = (byte)'x';
                var sent = new JsonObject { ["key"] = Base64(Pick(KeySpace.Keys)), ["value"] = Base64(Enumerable.Repeat(fill, OversizedValueBytes).ToArray()) };
                var recorded = new JsonObject
                {
                    ["key"] = sent["key"]!.DeepClone(),
                    ["value_fill"] = new JsonObject { ["byte"] = fill, ["length"] = OversizedValueBytes },
                };
                return new GeneratedOperation("kv/put", sent, recorded);
            }

            case 8:
                return Same("kv/range", new JsonObject { ["key"] = Base64(Pick(KeySpace.Keys)), ["revision"] = Int64(_revision + _random.Next(1, 4)) });
            default:
                return Compaction();
        }
    }

    /// <summary>Requests at etcd's edges which random generation rarely reaches: the operation limit
    /// per list and per nesting level on both sides, writes that may overlap, a compare on the empty
    /// key, an empty txn, a long key and a large value (each removed right after, so later answers
    /// stay small), a compaction at the current revision and reads at and below it.</summary>
    private GeneratedOperation Probe()
    {
        JsonObject RangeOp() => new() { ["request_range"] = new JsonObject { ["key"] = Base64(Pick(KeySpace.Keys)) } };
        JsonArray Ranges(int count) => [.. Enumerable.Range(0, count).Select(_ => RangeOp())];
        JsonObject PutOp(byte[] key) => new() { ["request_put"] = new JsonObject { ["key"] = Base64(key), ["value"] = Base64(Value()) } };
        switch (_random.Next(9))
        {
            case 0:
                // Limits apply to each list: 128 compares and 128 ops per branch are fine, 129 compares are not.
                int compares = MaxTxnOperations + _random.Next(2);
                return Same("kv/txn", new JsonObject
                {
                    ["compare"] = new JsonArray([.. Enumerable.Range(0, compares).Select(_ => Compare())]),
                    ["success"] = Ranges(MaxTxnOperations),
                    ["failure"] = Ranges(MaxTxnOperations),
                });
            case 1:
            {
                // etcd 3.4 checks a nested txn against what its parent leaves: maxTxnOps minus the
                // longest of the parent's compare, success and failure lists. Probe both sides of it.
                int outer = _random.Next(1, 101);
                int nested = MaxTxnOperations - outer + _random.Next(2);
                return Same("kv/txn", new JsonObject
                {
                    ["success"] = new JsonArray([.. Enumerable.Range(0, outer - 1).Select(_ => RangeOp()), new JsonObject { ["request_txn"] = new JsonObject { ["success"] = Ranges(nested) } }]),
                });
            }

            case 2:
            {
                // The same key put in success and in failure: only one branch runs, etcd allows it.
                byte[] key = Pick(KeySpace.Keys);
                return Same("kv/txn", new JsonObject
                {
                    ["compare"] = new JsonArray(Compare()),
                    ["success"] = new JsonArray(PutOp(key)),
                    ["failure"] = new JsonArray(PutOp(key), RangeOp()),
                });
            }

            case 3:
            {
                // Overlapping deletes in one list are allowed (only puts may not repeat or fall in a delete).
                byte[] prefix = Pick(KeySpace.Prefixes);
                return Same("kv/txn", new JsonObject
                {
                    ["success"] = new JsonArray(
                        new JsonObject { ["request_delete_range"] = new JsonObject { ["key"] = Base64(prefix), ["range_end"] = Base64(KeySpace.PrefixEnd(prefix)), ["prev_kv"] = true } },
                        new JsonObject { ["request_delete_range"] = new JsonObject { ["key"] = Base64(prefix), ["range_end"] = Base64([0x00]) } }),
                });
            }

            case 4:
                // A compare on the empty key (etcd refuses it as it refuses an empty key anywhere).
                return Same("kv/txn", new JsonObject
                {
                    ["compare"] = new JsonArray(new JsonObject { ["target"] = Pick(CompareTargets), ["result"] = Pick(CompareResults), ["version"] = "0" }),
                    ["success"] = new JsonArray(RangeOp()),
                    ["failure"] = new JsonArray(PutOp(Pick(KeySpace.Keys))),
                });
            case 5:
            {
                byte[] longKey = [.. "long/"u8, .. Enumerable.Repeat((byte)'k', LongKeyBytes - 5)];
                _followUps.Enqueue(Same("kv/range", new JsonObject { ["key"] = Base64([.. "long/"u8]), ["range_end"] = Base64(KeySpace.PrefixEnd([.. "long/"u8])), ["keys_only"] = true }));
                _followUps.Enqueue(Same("kv/deleterange", new JsonObject { ["key"] = Base64(longKey), ["prev_kv"] = true }));
                return Same("kv/put", new JsonObject { ["key"] = Base64(longKey), ["value"] = Base64(Value()) });
            }

            case 6:
            {
                byte[] key = [.. "large"u8];
                _followUps.Enqueue(Same("kv/range", new JsonObject { ["key"] = Base64(key), ["count_only"] = true }));
                _followUps.Enqueue(Same("kv/range", new JsonObject { ["key"] = Base64(key), ["keys_only"] = true }));
                _followUps.Enqueue(Same("kv/deleterange", new JsonObject { ["key"] = Base64(key) }));
                byte fill = (byte)'L';
                return new GeneratedOperation(
                    "kv/put",
                    new JsonObject { ["key"] = Base64(key), ["value"] = Base64(Enumerable.Repeat(fill, LargeValueBytes).ToArray()) },
                    new JsonObject { ["key"] = Base64(key), ["value_fill"] = new JsonObject { ["byte"] = fill, ["length"] = LargeValueBytes } });
            }

            case 7:
                // An empty txn: no compares succeed vacuously, nothing runs, nothing changes.
                return Same("kv/txn", new JsonObject());
            default:
                // Compaction exactly at the current revision, then a read there and one below it.
                _followUps.Enqueue(Same("kv/range", new JsonObject { ["key"] = Base64([0x00]), ["range_end"] = Base64([0x00]), ["revision"] = Int64(_revision), ["count_only"] = true }));
                _followUps.Enqueue(Same("kv/range", new JsonObject { ["key"] = Base64([0x00]), ["range_end"] = Base64([0x00]), ["revision"] = Int64(Math.Max(1, _revision - 1)), ["count_only"] = true }));
                return Same("kv/compaction", new JsonObject { ["revision"] = Int64(_revision) });
        }
    }

    /// <summary>A txn whose writes overlap in one of the ways etcd checks (or, for the nested
    /// then/else case, the way it allows).</summary>
    private JsonObject DuplicateKeyTxn()
    {
        byte[] key = Pick(KeySpace.Keys);
        JsonObject PutOp() => new() { ["request_put"] = new JsonObject { ["key"] = Base64(key), ["value"] = Base64(Value()) } };
        JsonArray ops = _random.Next(5) switch
        {
            0 => [PutOp(), PutOp()],
            1 => [PutOp(), new JsonObject { ["request_delete_range"] = new JsonObject { ["key"] = Base64(key) } }],
            2 => [new JsonObject { ["request_delete_range"] = new JsonObject { ["key"] = Base64([0x00]), ["range_end"] = Base64([0x00]) } }, PutOp()],
            3 => [PutOp(), new JsonObject { ["request_txn"] = new JsonObject { ["success"] = new JsonArray(PutOp()) } }],
            _ => [new JsonObject { ["request_txn"] = new JsonObject { ["success"] = new JsonArray(PutOp()), ["failure"] = new JsonArray(PutOp()) } }],
        };
        var txn = new JsonObject { ["success"] = ops };
        if (Chance(50))
        {
            txn["compare"] = new JsonArray(Compare());
        }

        return txn;
    }
}
