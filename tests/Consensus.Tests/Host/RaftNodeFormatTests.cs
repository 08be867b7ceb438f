using EmbeddedRaft.Consensus.Host;
using EmbeddedRaft.Storage;

namespace EmbeddedRaft.Consensus.Tests.Host;

/// <summary>The bytes RaftNode writes into the log and into snapshots, pinned as docs/formats.md states them.</summary>
[TestFixture]
public sealed class RaftNodeFormatTests
{
    [Test]
    public void TheProposalEnvelopeIsMarkerOriginRequestIdThenTheCommand()
    {
        var bytes = ProposalEnvelope.Encode(origin: 0x0102030405060708, requestId: 0x1112131415161718, [0xAA, 0xBB]);

        Assert.That(bytes, Is.EqualTo(new byte[]
        {
            0xE1,
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
            0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
            0xAA, 0xBB,
        }));
        Assert.That(ProposalEnvelope.TryDecode(bytes, out var origin, out var requestId, out var command), Is.True);
        Assert.That((origin, requestId, command.ToArray()), Is.EqualTo((0x0102030405060708UL, 0x1112131415161718UL, new byte[] { 0xAA, 0xBB })));
    }

    [Test]
    public void DataThatIsNotAnEnvelopeIsRecognised()
    {
        Assert.That(ProposalEnvelope.TryDecode(new byte[16], out _, out _, out _), Is.False, "too short");
        var wrongMarker = ProposalEnvelope.Encode(1, 2, []);
        wrongMarker[0] = 0xE2;
        Assert.That(ProposalEnvelope.TryDecode(wrongMarker, out _, out _, out _), Is.False, "another marker or version");
    }

    [Test]
    public void TheSnapshotHeaderListsEachOriginsRecentRequestIdsOldestFirst()
    {
        var window = new AppliedRequestWindow(window: 2);
        Assert.That(window.TryRecord(7, 100), Is.True);
        Assert.That(window.TryRecord(7, 101), Is.True);
        Assert.That(window.TryRecord(7, 100), Is.False, "a duplicate inside the window");
        Assert.That(window.TryRecord(7, 102), Is.True, "pushes 100 out of the window");
        Assert.That(window.TryRecord(3, 5), Is.True);

        var header = window.WriteHeader();

        Assert.That(header, Is.EqualTo(new byte[]
        {
            0x31, 0x48, 0x52, 0x45, 2, 0, 0, 0,
            3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
            7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 101, 0, 0, 0, 0, 0, 0, 0, 102, 0, 0, 0, 0, 0, 0, 0,
        }));
    }

    [Test]
    public async Task AHeaderReadBackRestoresTheWindowAndLeavesTheStreamAtTheStateMachinesData()
    {
        var window = new AppliedRequestWindow(window: 10);
        window.TryRecord(1, 42);
        var stream = new MemoryStream([.. window.WriteHeader(), 0x99]);

        var restored = new AppliedRequestWindow(window: 10);
        await restored.ReadHeaderAsync(stream, "test", CancellationToken.None);

        Assert.That(restored.TryRecord(1, 42), Is.False, "the restored window drops the same duplicate");
        Assert.That(restored.TryRecord(1, 43), Is.True);
        Assert.That(stream.ReadByte(), Is.EqualTo(0x99));
    }

    [Test]
    public void ASnapshotWithoutTheHeaderFailsTheRestoreAsCorruption()
    {
        var stream = new MemoryStream(new byte[] { 1, 2, 3, 4, 0, 0, 0, 0 });

        var error = Assert.ThrowsAsync<CorruptionException>(async () =>
            await new AppliedRequestWindow(10).ReadHeaderAsync(stream, "snapshot 9", CancellationToken.None));
        Assert.That(error!.Message, Does.Contain("snapshot 9").And.Contain("RaftNode header"));
    }
}
