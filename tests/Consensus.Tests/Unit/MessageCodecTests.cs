using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

public class MessageCodecTests
{
    private static Message Sample() => new()
    {
        Type = MessageType.Append,
        To = 2,
        From = 1,
        Term = ulong.MaxValue,
        LogTerm = 7,
        Index = 1UL << 40,
        Commit = 300,
        Reject = true,
        RejectHint = 127,
        Context = "ctx"u8.ToArray(),
        Entries = new[] { E(7, (1UL << 40) + 1, "hello"), new Entry(7, (1UL << 40) + 2, EntryType.ConfChange, default) },
        Snapshot = new SnapshotMetadata(99, 6, new ConfState([1, 2, 3], [4], [5], [4], autoLeave: true, removed: [6, 300])),
    };

    private static void AssertSame(Message expected, Message actual)
    {
        Assert.That(
            (actual.Type, actual.To, actual.From, actual.Term, actual.LogTerm, actual.Index, actual.Commit, actual.Reject, actual.RejectHint),
            Is.EqualTo((expected.Type, expected.To, expected.From, expected.Term, expected.LogTerm, expected.Index, expected.Commit, expected.Reject, expected.RejectHint)));
        Assert.That(actual.Context.ToArray(), Is.EqualTo(expected.Context.ToArray()));
        Assert.That(actual.Entries.ToArray(), Is.EqualTo(expected.Entries.ToArray()));
        Assert.That(actual.Snapshot, Is.EqualTo(expected.Snapshot));
    }

    [Test]
    public void EveryMessageFieldSurvivesARoundTrip()
    {
        var message = Sample();

        var bytes = MessageCodec.Encode(message);

        Assert.That(bytes, Has.Length.EqualTo(MessageCodec.GetEncodedLength(message)));
        AssertSame(message, MessageCodec.DecodeMessage(bytes));
    }

    [Test]
    public void ASnapshotMessageCarriesOnlyMetadataAndOlderInlineDataIsRefused()
    {
        var message = new Message { Type = MessageType.Snapshot, To = 2, From = 1, Term = 6, Snapshot = Sample().Snapshot };
        var version3 = MessageCodec.Encode(message);
        Assert.That(version3, Has.Length.EqualTo(MessageCodec.GetEncodedLength(message)));

        // Version 2 wrote the same fields and then the data, length-prefixed, as the last field.
        byte[] version2Empty = [2, .. version3[1..], 0];
        AssertSame(message, MessageCodec.DecodeMessage(version2Empty));
        byte[] version2WithData = [2, .. version3[1..], 3, (byte)'a', (byte)'b', (byte)'c'];
        var error = Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(version2WithData));
        Assert.That(error!.Message, Does.Contain("out of band"));
    }

    [Test]
    public void AnEmptyMessageEncodesCompactly()
    {
        var message = new Message { Type = MessageType.Heartbeat, To = 2, From = 1, Term = 3, Commit = 5 };

        var bytes = MessageCodec.Encode(message);

        Assert.That(bytes.Length, Is.LessThanOrEqualTo(14));
        AssertSame(message, MessageCodec.DecodeMessage(bytes));
    }

    [Test]
    public void DecodedDataDoesNotAliasTheInputBuffer()
    {
        var bytes = MessageCodec.Encode(Sample());
        var decoded = MessageCodec.DecodeMessage(bytes);

        Array.Clear(bytes);

        Assert.That(Text(decoded.Entries.Span[0]), Is.EqualTo("hello"));
    }

    [Test]
    public void EntriesHardStatesAndSnapshotMetadataRoundTrip()
    {
        var entry = E(3, 9, "payload");
        var hardState = new HardState(5, 2, 8);
        var metadata = new SnapshotMetadata(10, 4, new ConfState([1, 2], learners: [3]));

        Assert.That(MessageCodec.DecodeEntry(MessageCodec.EncodeEntry(entry)), Is.EqualTo(entry));
        Assert.That(MessageCodec.DecodeHardState(MessageCodec.EncodeHardState(hardState)), Is.EqualTo(hardState));
        Assert.That(MessageCodec.DecodeSnapshotMetadata(MessageCodec.EncodeSnapshotMetadata(metadata)), Is.EqualTo(metadata));
    }

    [Test]
    public void EveryTruncationOfAValidMessageIsAFormatError()
    {
        var bytes = MessageCodec.Encode(Sample());
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(bytes.AsSpan(0, length)), $"length {length}");
        }
    }

    [Test]
    public void UnknownVersionTypeFlagsAndTrailingBytesAreFormatErrors()
    {
        var bytes = MessageCodec.Encode(new Message { Type = MessageType.Heartbeat, To = 2, From = 1, Term = 3 });

        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage([.. bytes, 0]), "trailing byte");
        var badVersion = bytes.ToArray();
        badVersion[0] = MessageCodec.Version + 1;
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(badVersion), "newer version");
        badVersion[0] = 0;
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(badVersion), "version 0");
        var badType = bytes.ToArray();
        badType[1] = 200;
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(badType), "type");
        var badFlags = bytes.ToArray();
        badFlags[2] = 0x80;
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(badFlags), "flags");
    }

    [Test]
    public void AVarintHasOneSpellingAndABadOneIsReportedWhereItGoesWrong()
    {
        // The To field (offset 3 of a heartbeat) spelled badly four ways; the offset is past the
        // byte that was wrong, or at the end of the input for a value cut off.
        byte[] head = [MessageCodec.Version, (byte)MessageType.Heartbeat, 0];
        (byte[] To, int Offset, string What)[] cases =
        [
            ([0x80, 0x00], 5, "varint is not minimally encoded"),
            ([0xFF, 0x80, 0x00], 6, "varint is not minimally encoded"),
            ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], 13, "varint overflows 64 bits"),
            ([0x80, 0x80], 5, "unexpected end of input"),

            // The same two spellings with more input after them, where the decoder reads two- and
            // three-byte values without its loop: refused all the same, at the same offsets.
            ([0x80, 0x00, 0x01], 5, "varint is not minimally encoded"),
            ([0xFF, 0x80, 0x00, 0x01], 6, "varint is not minimally encoded"),
        ];

        foreach (var (to, offset, what) in cases)
        {
            var bad = Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage([.. head, .. to]));
            Assert.That((bad!.Offset, bad.Message), Is.EqualTo((offset, $"Malformed encoding at offset {offset}: {what}.")), BitConverter.ToString(to));
        }

        // The largest value and the byte boundaries still read back exactly.
        foreach (ulong value in new ulong[] { 0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 1UL << 56, ulong.MaxValue })
        {
            var message = new Message { Type = MessageType.Heartbeat, To = value, From = 1, Term = value, Commit = value };
            AssertSame(message, MessageCodec.DecodeMessage(MessageCodec.Encode(message)));
        }
    }

    [Test]
    public void AHugeDeclaredCountIsRefusedBeforeAllocating()
    {
        // version, type, flags, seven zero varints, empty context, then an entry count of 2^62.
        byte[] bytes = [MessageCodec.Version, (byte)MessageType.Append, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];

        var ex = Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeMessage(bytes));
        Assert.That(ex!.Message, Does.Contain("count"));
    }

    [Test]
    public void ArbitraryBytesOnlyEverFailWithAFormatErrorAndBoundedAllocation()
    {
        var seed = 20261121;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var valid = MessageCodec.Encode(Sample());
        for (var i = 0; i < 20_000; i++)
        {
            byte[] input;
            if (i % 2 == 0)
            {
                input = new byte[random.Next(0, 64)];
                random.NextBytes(input);
                if (input.Length > 0)
                {
                    input[0] = MessageCodec.Version;
                }
            }
            else
            {
                // Mutations of a valid message reach deeper into the decoder.
                input = valid.ToArray();
                for (var flips = random.Next(1, 4); flips > 0; flips--)
                {
                    input[random.Next(input.Length)] = (byte)random.Next(256);
                }
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                MessageCodec.DecodeMessage(input);
            }
            catch (MessageFormatException)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"input #{i} threw {ex.GetType().Name}: {ex.Message} (seed {seed}): {Convert.ToHexString(input)}");
            }

            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(allocated, Is.LessThan(4096 + (input.Length * 64)), $"input #{i} allocated {allocated} bytes (seed {seed})");
        }
    }

    [Test]
    public void ConfigurationChangesRoundTrip()
    {
        ConfChange[] changes =
        [
            ConfChange.AddVoter(4),
            ConfChange.LeaveJoint(),
            new([new(ConfChangeType.AddVoter, 1UL << 50), new(ConfChangeType.AddLearner, 5), new(ConfChangeType.RemoveNode, 2)], ConfChangeTransition.JointExplicit),
            new([new(ConfChangeType.AddLearner, 7), new(ConfChangeType.AddLearner, 8)], ConfChangeTransition.Simple),
            ConfChange.Demote(3),
        ];

        foreach (var change in changes)
        {
            var decoded = MessageCodec.DecodeConfChange(MessageCodec.EncodeConfChange(change));

            Assert.That(decoded.Transition, Is.EqualTo(change.Transition), change.ToString());
            Assert.That(decoded.Changes, Is.EqualTo(change.Changes), change.ToString());
        }
    }

    [Test]
    public void Version1SnapshotMetadataIsStillReadWithNoRemovedIds()
    {
        // Version 1 wrote: index term voters outgoing learners learnersNext autoLeave (no removed ids).
        byte[] version1 = [1, 10, 4, 2, 1, 2, 0, 1, 3, 0, 0];

        var metadata = MessageCodec.DecodeSnapshotMetadata(version1);

        Assert.That(metadata, Is.EqualTo(new SnapshotMetadata(10, 4, new ConfState([1, 2], learners: [3]))));
    }

    [Test]
    public void MalformedConfigurationChangesAreFormatErrors()
    {
        var valid = MessageCodec.EncodeConfChange(new ConfChange([new(ConfChangeType.AddVoter, 4)]));

        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeConfChange([]), "empty");
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeConfChange([1, 0, 0]), "version 1 has no configuration changes");
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeConfChange([MessageCodec.Version, 9, 0]), "unknown transition");
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeConfChange([MessageCodec.Version, 0, 1, 9, 4]), "unknown type");
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeConfChange([MessageCodec.Version, 0, 100, 0, 4]), "count beyond input");
        Assert.Throws<MessageFormatException>(() => MessageCodec.DecodeConfChange([.. valid, 0]), "trailing byte");
    }

    [Test]
    public void ArbitraryConfigurationChangeBytesOnlyEverFailWithAFormatErrorAndBoundedAllocation()
    {
        var seed = 20261122;
        TestContext.Out.WriteLine($"seed {seed}");
        var random = new Random(seed);
        var valid = MessageCodec.EncodeConfChange(new ConfChange(
            [new(ConfChangeType.AddVoter, 4), new(ConfChangeType.AddLearner, 300), new(ConfChangeType.RemoveNode, 2)], ConfChangeTransition.JointImplicit));
        var decodedCount = 0;
        for (var i = 0; i < 20_000; i++)
        {
            byte[] input;
            if (i % 2 == 0)
            {
                input = new byte[random.Next(0, 32)];
                random.NextBytes(input);
                if (input.Length > 0)
                {
                    input[0] = MessageCodec.Version;
                }
            }
            else
            {
                input = valid.ToArray();
                for (var flips = random.Next(1, 3); flips > 0; flips--)
                {
                    input[random.Next(input.Length)] = (byte)random.Next(256);
                }
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                var decoded = MessageCodec.DecodeConfChange(input);
                decodedCount++;

                // Whatever decodes re-encodes to the same bytes (one canonical encoding), apart
                // from an older version byte, which re-encodes as the current version.
                byte[] canonical = [MessageCodec.Version, .. input[1..]];
                Assert.That(MessageCodec.EncodeConfChange(decoded), Is.EqualTo(canonical), $"input #{i} (seed {seed})");
            }
            catch (MessageFormatException)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"input #{i} threw {ex.GetType().Name}: {ex.Message} (seed {seed}): {Convert.ToHexString(input)}");
            }

            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(allocated, Is.LessThan(2048 + (input.Length * 64)), $"input #{i} allocated {allocated} bytes (seed {seed})");
        }

        Assert.That(decodedCount, Is.GreaterThan(100), "mutations must also produce valid changes");
    }
}
