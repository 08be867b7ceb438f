namespace EmbeddedRaft.Consensus.Quorum;

/// <summary>Gives, for a voter, the highest log index it has acknowledged.</summary>
internal interface IAckedIndexer
{
    /// <summary>Returns false if <paramref name="id"/> has no known acknowledgement.</summary>
    bool TryGetAckedIndex(ulong id, out ulong index);
}
