namespace EmbeddedRaft.Consensus.Quorum;

/// <summary>The outcome of counting votes against a configuration.</summary>
internal enum VoteResult
{
    /// <summary>Neither a quorum of yes nor of no votes yet.</summary>
    Pending = 1,
    /// <summary>A quorum voted no (or cannot vote yes any more).</summary>
    Lost = 2,
    /// <summary>A quorum voted yes.</summary>
    Won = 3,
}
