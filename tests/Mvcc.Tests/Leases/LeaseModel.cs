namespace EmbeddedRaft.Mvcc.Tests.Leases;

/// <summary>
/// An independent model of etcd's leases over a key space, in plain dictionaries and milliseconds:
/// what the store must equal after every operation of a random run. Expiry follows the store's
/// documented rule: at each check (every <see cref="CheckIntervalMs"/> from time 0) every lease
/// whose TTL has run out is revoked.
/// </summary>
internal sealed class LeaseModel(long minTtlSeconds)
{
    public const long CheckIntervalMs = 500;

    public long Revision { get; private set; } = 1;

    public long NowMs { get; private set; }

    public SortedDictionary<string, (string Value, long Lease)> Keys { get; } = new(StringComparer.Ordinal);

    public SortedDictionary<long, (long TtlSeconds, long ExpiryMs)> Leases { get; } = [];

    public MvccError? Grant(long id, long ttlSeconds, out long grantedTtl)
    {
        grantedTtl = Math.Max(ttlSeconds, minTtlSeconds);
        if (ttlSeconds > LeaseOptions.MaxTtlSeconds)
        {
            return MvccError.LeaseTtlTooLarge;
        }

        if (Leases.ContainsKey(id))
        {
            return MvccError.LeaseExists;
        }

        Leases[id] = (grantedTtl, NowMs + (grantedTtl * 1000));
        return null;
    }

    public MvccError? Revoke(long id)
    {
        if (!Leases.Remove(id))
        {
            return MvccError.LeaseNotFound;
        }

        var attached = Keys.Where(k => k.Value.Lease == id).Select(k => k.Key).ToList();
        foreach (string key in attached)
        {
            Keys.Remove(key);
        }

        if (attached.Count > 0)
        {
            Revision++;
        }

        return null;
    }

    /// <summary>True when the lease exists but its TTL ran out: it is revoked at the next check, and a keep-alive waits for that (as etcd's).</summary>
    public bool AwaitsRevocation(long id) => Leases.TryGetValue(id, out var lease) && lease.ExpiryMs <= NowMs;

    public MvccError? KeepAlive(long id)
    {
        if (!Leases.TryGetValue(id, out var lease) || lease.ExpiryMs <= NowMs)
        {
            return MvccError.LeaseNotFound;
        }

        Leases[id] = (lease.TtlSeconds, NowMs + (lease.TtlSeconds * 1000));
        return null;
    }

    public MvccError? Put(string key, string value, long lease, bool ignoreLease = false)
    {
        if (ignoreLease && !Keys.ContainsKey(key))
        {
            return MvccError.KeyNotFound;
        }

        if (lease != 0 && !Leases.ContainsKey(lease))
        {
            return MvccError.LeaseNotFound;
        }

        Keys[key] = (value, ignoreLease ? Keys[key].Lease : lease);
        Revision++;
        return null;
    }

    /// <summary>A transaction of puts: checked as a whole, then one revision.</summary>
    public MvccError? PutAll(IReadOnlyList<(string Key, string Value, long Lease)> puts)
    {
        if (puts.Any(p => p.Lease != 0 && !Leases.ContainsKey(p.Lease)))
        {
            return MvccError.LeaseNotFound;
        }

        foreach (var (key, value, lease) in puts)
        {
            Keys[key] = (value, lease);
        }

        Revision++;
        return null;
    }

    public void Delete(string key)
    {
        if (Keys.Remove(key))
        {
            Revision++;
        }
    }

    /// <summary>Moves the clock, revoking at every check on the way the leases that ran out.</summary>
    public void Advance(long byMs)
    {
        long target = NowMs + byMs;
        while (NowMs < target)
        {
            long nextCheck = ((NowMs / CheckIntervalMs) + 1) * CheckIntervalMs;
            NowMs = Math.Min(nextCheck, target);
            if (NowMs % CheckIntervalMs == 0)
            {
                foreach (long id in Leases.Where(l => l.Value.ExpiryMs <= NowMs).Select(l => l.Key).ToList())
                {
                    Revoke(id);
                }
            }
        }
    }

    /// <summary>A restart: every lease's TTL runs in full from now.</summary>
    public void Restart()
    {
        foreach (var (id, lease) in Leases.ToList())
        {
            Leases[id] = (lease.TtlSeconds, NowMs + (lease.TtlSeconds * 1000));
        }
    }

    /// <summary>Whole seconds left, rounded down, 0 once run out.</summary>
    public long Remaining(long id) => Math.Max(0, Leases[id].ExpiryMs - NowMs) / 1000;

    /// <summary>Everything the store must show, as text (keys, then leases with TTLs and keys).</summary>
    public string Describe(bool withRemaining = true) => string.Join(
        " | ",
        string.Join(" ", Keys.Select(k => $"{k.Key}={k.Value.Value}@{k.Value.Lease}")),
        string.Join(" ", Leases.OrderBy(l => l.Value.ExpiryMs).ThenBy(l => l.Key).Select(l => $"lease {l.Key} ttl {(withRemaining ? Remaining(l.Key) : 0)}/{l.Value.TtlSeconds} keys [{string.Join(",", Keys.Where(k => k.Value.Lease == l.Key).Select(k => k.Key))}]")),
        $"revision {Revision}");

    /// <summary>The same description read from a store.</summary>
    public static string Describe(MvccStore store, bool withRemaining = true)
    {
        var kvs = store.Range(new RangeRequest { Key = new byte[] { 0 }, RangeEnd = new byte[] { 0 } }).Kvs;
        var leases = store.LeaseLeases().Leases.Select(id =>
        {
            var ttl = store.LeaseTimeToLive(id, keys: true);
            return $"lease {id} ttl {(withRemaining ? ttl.TtlSeconds : 0)}/{ttl.GrantedTtlSeconds} keys [{string.Join(",", ttl.Keys.Select(k => Store.StoreTestSupport.S(k)))}]";
        });
        return string.Join(
            " | ",
            string.Join(" ", kvs.Select(kv => $"{Store.StoreTestSupport.S(kv.Key)}={Store.StoreTestSupport.S(kv.Value)}@{kv.Lease}")),
            string.Join(" ", leases),
            $"revision {store.Revision}");
    }
}
