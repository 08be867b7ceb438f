using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Consensus.Tests.Cluster;

/// <summary>One member of a <see cref="SimulatedCluster"/>: its disk outlives its incarnations; the node and the state machine do not.</summary>
internal sealed class SimulatedNode(ulong id, FaultInjectingFileSystem disk)
{
    public ulong Id { get; } = id;

    public FaultInjectingFileSystem Disk { get; } = disk;

    public RaftNode<ulong>? Node { get; set; }

    public HistoryStateMachine? Machine { get; set; }

    public int Incarnation { get; set; }
}
