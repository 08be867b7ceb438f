namespace EmbeddedRaft.TestSupport.Linearizability;

/// <summary>What the checker concluded about a history.</summary>
public enum LinearizabilityVerdict
{
    /// <summary>Some order of the operations respects real time and the model.</summary>
    Linearizable,

    /// <summary>No order does: the result carries a counterexample.</summary>
    NotLinearizable,

    /// <summary>The search hit its step or time bound before deciding.</summary>
    Unknown,
}
