using System.Text.Json.Nodes;

namespace EmbeddedRaft.Mvcc.Tests.EtcdCompat;

/// <summary>
/// Compares two JSON trees exactly (same members, same array lengths, same scalars) and names the
/// first place they differ by its path, e.g. <c>responses[1].response_range.kvs[0].version</c>.
/// Both sides use proto3 JSON's convention that a field at its default value is absent, so an
/// absent member stands for 0, false, "" or an empty list.
/// </summary>
internal static class JsonDifference
{
    /// <summary>The first difference, or null when the trees are equal.</summary>
    public static string? Find(JsonNode? expected, JsonNode? actual, string path = "")
    {
        switch (expected, actual)
        {
            case (null, null):
                return null;
            case (JsonObject e, JsonObject a):
                foreach (string name in e.Select(p => p.Key).Union(a.Select(p => p.Key)).Order(StringComparer.Ordinal))
                {
                    string member = path.Length == 0 ? name : $"{path}.{name}";
                    if (!e.ContainsKey(name) || !a.ContainsKey(name))
                    {
                        return $"{member}: etcd {Show(e[name], e.ContainsKey(name))}, MvccStore {Show(a[name], a.ContainsKey(name))}";
                    }

                    if (Find(e[name], a[name], member) is string difference)
                    {
                        return difference;
                    }
                }

                return null;
            case (JsonArray e, JsonArray a):
                for (int i = 0; i < Math.Min(e.Count, a.Count); i++)
                {
                    if (Find(e[i], a[i], $"{path}[{i}]") is string difference)
                    {
                        return difference;
                    }
                }

                return e.Count == a.Count ? null : $"{path}: etcd has {e.Count} elements, MvccStore {a.Count}";
            case (JsonValue e, JsonValue a) when e.TryGetValue(out string? es) && a.TryGetValue(out string? @as):
                return es == @as ? null : $"{path}: etcd {Show(expected, true)}, MvccStore {Show(actual, true)}";
            case (JsonValue e, JsonValue a) when e.ToJsonString() == a.ToJsonString():
                return null;
            default:
                return $"{path}: etcd {Show(expected, true)}, MvccStore {Show(actual, true)}";
        }
    }

    private static string Show(JsonNode? node, bool present) => present ? node?.ToJsonString() ?? "null" : "(absent)";
}
