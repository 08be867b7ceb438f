namespace EmbeddedRaft.Simulation.Tests.Simulator;

/// <summary>A run that cannot go on (a livelock): its violation is recorded and the run ends at once with what it observed.</summary>
internal sealed class SimulationAbortedException(string message, Exception inner) : Exception(message, inner);
