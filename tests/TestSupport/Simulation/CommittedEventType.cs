namespace EmbeddedRaft.TestSupport.Simulation;

/// <summary>What a committed event did to its key (etcd's <c>mvccpb.Event.EventType</c>).</summary>
public enum CommittedEventType
{
    /// <summary>The key was written (created or updated).</summary>
    Put,

    /// <summary>The key was deleted (by a delete, a transaction or a lease revocation).</summary>
    Delete,
}
