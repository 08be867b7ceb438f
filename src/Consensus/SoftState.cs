namespace EmbeddedRaft.Consensus;

/// <summary>Volatile state worth reporting when it changes: who leads and what this node is.</summary>
/// <param name="Lead">The leader's id, or 0 when none is known.</param>
/// <param name="Role">This node's role.</param>
public readonly record struct SoftState(ulong Lead, StateRole Role);
