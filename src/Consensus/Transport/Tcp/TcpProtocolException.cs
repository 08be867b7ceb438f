namespace EmbeddedRaft.Consensus.Transport.Tcp;

/// <summary>
/// A peer broke the wire protocol (bad length, oversize frame, unknown frame type, undecodable or
/// misaddressed message, a partial frame that stalled): its connection is closed, nothing else.
/// </summary>
internal sealed class TcpProtocolException(string reason, string kind) : Exception(reason)
{
    /// <summary>A short tag for metrics: "oversize", "malformed", "stalled", "unexpected".</summary>
    public string Kind { get; } = kind;
}
