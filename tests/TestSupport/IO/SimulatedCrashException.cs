namespace EmbeddedRaft.TestSupport.IO;

/// <summary>
/// Thrown by the fault-injecting file system at a simulated crash and by every operation after it
/// until <see cref="FaultInjectingFileSystem.Restart"/>: the process "died", nothing it does reaches
/// the disk. Deliberately not an <see cref="IOException"/>, so code that handles disk errors does
/// not mistake a crash for one.
/// </summary>
public sealed class SimulatedCrashException : Exception
{
    public SimulatedCrashException(string message) : base(message)
    {
    }
}
