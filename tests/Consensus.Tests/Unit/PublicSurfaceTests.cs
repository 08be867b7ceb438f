using System.Reflection;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// The shape of the public surface a host builds on: no public type in the internal namespaces,
/// no exception a user could create in a meaningless state, no names that collide with the next layers.
/// </summary>
public class PublicSurfaceTests
{
    private static readonly Type[] s_public = typeof(RawNode).Assembly.GetExportedTypes();

    [Test]
    public void TheInternalNamespacesExportNoType()
    {
        var internalNamespaces = new[] { "EmbeddedRaft.Consensus.Core", "EmbeddedRaft.Consensus.Quorum", "EmbeddedRaft.Consensus.Tracking" };
        Assert.That(s_public.Where(t => internalNamespaces.Contains(t.Namespace)).Select(t => t.FullName), Is.Empty);
        Assert.That(typeof(ProgressState).Namespace, Is.EqualTo("EmbeddedRaft.Consensus"), "used by the public ProgressStatus");
    }

    [Test]
    public void ExceptionsTheNodeThrowsCannotBeCreatedByUsers()
    {
        foreach (var type in new[] { typeof(ProposalDroppedException), typeof(MessageRejectedException), typeof(ConfChangeRejectedException), typeof(Messages.MessageFormatException) })
        {
            Assert.That(type.GetConstructors(BindingFlags.Public | BindingFlags.Instance), Is.Empty, type.Name);
        }
    }

    [Test]
    public void ExceptionsAStorageThrowsHaveOneConstructorTakingTheFacts()
    {
        Assert.That(Parameters(typeof(LogCompactedException)), Is.EqualTo(new[] { "requestedIndex", "firstIndex" }));
        Assert.That(Parameters(typeof(EntriesUnavailableException)), Is.EqualTo(new[] { "requestedIndex", "lastIndex" }));
        Assert.That(Parameters(typeof(SnapshotOutOfDateException)), Is.EqualTo(new[] { "snapshotIndex", "currentIndex" }));
        Assert.That(Parameters(typeof(SnapshotTemporarilyUnavailableException)), Is.Empty);

        static string[] Parameters(Type type)
        {
            var constructor = type.GetConstructors(BindingFlags.Public | BindingFlags.Instance).Single();
            return constructor.GetParameters().Select(p => p.Name!).ToArray();
        }
    }

    [Test]
    public void ARefusalWithAnUndefinedReasonIsABug() =>
        Assert.That(() => new ProposalDroppedException(0), Throws.TypeOf<InvariantViolationException>());

    [Test]
    public void NoPublicNameCollidesWithTheNextLayers()
    {
        // The MVCC store has a compacted-revision error; gRPC (the etcd endpoint) has Status.
        var names = s_public.Select(t => t.Name).ToHashSet();
        Assert.That(names, Does.Not.Contain("CompactedException").And.Not.Contain("Status"));
        Assert.That(names, Does.Contain(nameof(LogCompactedException)).And.Contain(nameof(RaftStatus)));
    }
}
