namespace EmbeddedRaft.Mvcc;

/// <summary>What a <see cref="WatchEvent"/> reports, as etcd's <c>mvccpb.Event_EventType</c>.</summary>
public enum WatchEventType
{
    /// <summary>A put: the key was created or got a new version.</summary>
    Put,

    /// <summary>A delete: the key was removed (by a delete, a transaction, or a lease's revocation).</summary>
    Delete,
}
