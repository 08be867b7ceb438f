using System.Text;

namespace EmbeddedRaft.Mvcc.Store;

/// <summary>Bucket names and the keys of the meta bucket (docs/formats.md, "MVCC store").</summary>
internal static class MetaKeys
{
    /// <summary>The bucket of revisions: <see cref="RevisionKey"/> to <see cref="StoredValue"/>.</summary>
    public const string KeyBucket = "key";

    /// <summary>The bucket of the store's own facts below.</summary>
    public const string MetaBucket = "meta";

    /// <summary>The replicated store's own state (member registry), written in the data's batches; absent in a standalone store.</summary>
    public const string ReplicaBucket = "replica";

    /// <summary>Format version of the store: 8 bytes big-endian, <see cref="FormatVersion"/>.</summary>
    public static readonly byte[] FormatVersionKey = Encoding.ASCII.GetBytes("formatVersion");

    /// <summary>The last applied Raft index: 8 bytes big-endian, written in the commit of the data it applied.</summary>
    public static readonly byte[] ConsistentIndexKey = Encoding.ASCII.GetBytes("consistentIndex");

    /// <summary>The newest compaction asked for: main revision, 8 bytes big-endian (etcd's scheduledCompactRev).</summary>
    public static readonly byte[] ScheduledCompactKey = Encoding.ASCII.GetBytes("scheduledCompactRev");

    /// <summary>The newest compaction whose physical part finished: main revision, 8 bytes big-endian (etcd's finishedCompactRev).</summary>
    public static readonly byte[] FinishedCompactKey = Encoding.ASCII.GetBytes("finishedCompactRev");

    /// <summary>
    /// The format version this library writes: 2, stored values of kinds 1 to 4 (<see cref="StoredValue"/>).
    /// A store of version 1 (kinds 1 and 2 only) is raised to 2 when it opens, before anything is
    /// written, so a build that reads only version 1 refuses it rather than misread a kind 3 or 4.
    /// </summary>
    public const long FormatVersion = 2;

    /// <summary>The version stores had before compact stored values: every entry of kind 1 or 2.</summary>
    public const long FormatVersion1 = 1;

    /// <summary>The hash starts with the revision bucket's name, as etcd's HashKV does.</summary>
    public static readonly byte[] KeyBucketNameBytes = Encoding.ASCII.GetBytes(KeyBucket);
}
