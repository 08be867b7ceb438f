namespace EmbeddedRaft.Interop.Tests.Etcdctl;

/// <summary>One command of an <see cref="EtcdctlScript"/> with its input and expected output.</summary>
internal sealed class ScriptBlock(ScriptCommand command, List<string> comments)
{
    public ScriptCommand Command { get; } = command;

    public List<string> Comments { get; } = comments;

    public List<string> Input { get; } = [];

    public List<string> Expected { get; } = [];
}
