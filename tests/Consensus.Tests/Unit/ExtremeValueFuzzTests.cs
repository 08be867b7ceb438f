using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Consensus.Tests.Support;
using static EmbeddedRaft.Consensus.Tests.Support.Fixtures;

namespace EmbeddedRaft.Consensus.Tests.Unit;

/// <summary>
/// Random messages whose terms, indexes, commits, snapshot indexes and reject hints come from the
/// edges of the value range (<see cref="ulong.MaxValue"/> and neighbours, 2^63, 2^32) and from
/// around the node's own term and index. A node must refuse them with
/// <see cref="MessageRejectedException"/> or handle them, and stay safe.
/// </summary>
public class ExtremeValueFuzzTests
{
    private static readonly ulong[] s_three = [1, 2, 3];

    [TestCase(17)]
    [TestCase(29)]
    public void ExtremeTermsAndIndexesAreRefusedOrHandledAndNeverBreakANode(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed}; the test is fully seeded, rerun it to reproduce");
        var random = new Random(seed);
        var net = TestNetwork.OfSize(3, id => TestNode.Seeded(id) with { PreVote = seed % 2 == 0, CheckQuorum = seed % 2 == 0, MaxSizePerMessageBytes = ulong.MaxValue });
        net.Campaign(1);
        net.Propose(1, "x");
        net.Propose(1, "y");
        // Local types and bad senders are refused before any value is looked at; keep them rare.
        var types = Enum.GetValues<MessageType>().Where(t => !MessageTypes.IsLocal(t)).ToArray();
        var rejected = 0;
        var handled = 0;

        // Usually one field per message is drawn from the edges of the range, the others near
        // the node's own values, so that both the refusals and the handling paths are exercised.
        var extremeField = 0;
        ulong Pick(int field, ulong near) => field == extremeField || random.Next(40) == 0
            ? random.Next(7) switch
            {
                0 => ulong.MaxValue,
                1 => ulong.MaxValue - 1,
                2 => (ulong)long.MaxValue,
                3 => (ulong)long.MaxValue + 1,
                4 => (ulong)long.MaxValue - 1,
                5 => 1UL << 32,
                _ => (ulong)random.NextInt64(long.MinValue, long.MaxValue),
            }
            : random.Next(3) switch
            {
                0 => unchecked(near + (ulong)random.Next(0, 3)),
                1 => near - Math.Min(near, (ulong)random.Next(0, 3)),
                _ => (ulong)random.Next(1, 6),
            };

        for (var i = 0; i < 20_000; i++)
        {
            var target = net[(ulong)random.Next(1, 4)];
            var core = target.Core;
            if (random.Next(10) == 0)
            {
                target.Node.Tick();
                target.ReadMessages();
                continue;
            }

            extremeField = random.Next(14);
            var term = Pick(0, core.Term);
            var index = Pick(1, core.Log.LastIndex());
            var contiguous = random.Next(4) != 0;
            var entries = Enumerable.Range(0, random.Next(0, 3))
                .Select(k => E(Pick(2, term), contiguous ? unchecked(index + 1 + (ulong)k) : Pick(2, index), "r"))
                .ToArray();
            var m = new Message
            {
                Type = types[random.Next(types.Length)],
                From = random.Next(10) == 0 ? (ulong)random.Next(0, 5) : s_three.Where(id => id != target.Id).ElementAt(random.Next(2)),
                To = random.Next(10) == 0 ? (ulong)random.Next(0, 5) : target.Id,
                Term = term,
                LogTerm = Pick(3, core.Term),
                Index = index,
                Commit = Pick(4, core.Log.Committed),
                Reject = random.Next(4) == 0,
                RejectHint = Pick(5, core.Log.LastIndex()),
                Entries = entries,
                Snapshot = random.Next(6) == 0
                    ? new SnapshotMetadata(Pick(6, core.Log.LastIndex()), Pick(7, term), new ConfState(s_three))
                    : null,
            };

            var before = (Term: core.Term, core.Vote, Commit: core.Log.Committed);
            try
            {
                target.Step(m);
                handled++;
            }
            catch (MessageRejectedException)
            {
                rejected++;
            }
            catch (ProposalDroppedException) when (m.Type == MessageType.Propose)
            {
                // A documented answer to a forwarded proposal (no leader, transfer, quota).
            }
            catch (Exception ex)
            {
                Assert.Fail($"message #{i} {m} to {target.Id} threw {ex.GetType().Name}: {ex.Message} (seed {seed})");
            }

            try
            {
                target.ReadMessages();
            }
            catch (Exception ex)
            {
                Assert.Fail($"handling the Ready after message #{i} {m} to {target.Id} threw {ex.GetType().Name}: {ex.Message} (seed {seed})");
            }

            core = target.Core;
            var what = $"after message #{i} {m} to {target.Id} (seed {seed})";
            Assert.That(core.Term, Is.GreaterThanOrEqualTo(before.Term), $"term went down {what}");
            Assert.That(core.Log.Committed, Is.GreaterThanOrEqualTo(before.Commit), $"commit went down {what}");
            Assert.That(core.Log.Committed, Is.LessThanOrEqualTo(core.Log.LastIndex()), $"commit beyond the log {what}");
            Assert.That(core.Log.Applied, Is.LessThanOrEqualTo(core.Log.Committed), $"applied beyond the commit {what}");
            if (core.Term == before.Term && before.Vote != 0)
            {
                Assert.That(core.Vote, Is.EqualTo(before.Vote), $"second vote in term {core.Term} {what}");
            }
        }

        TestContext.Out.WriteLine($"{rejected} messages rejected, {handled} handled");
        Assert.That(rejected, Is.GreaterThan(1000), "the fuzzer must reach the validation");
        Assert.That(handled, Is.GreaterThan(1000), "the fuzzer must reach the handling");
    }
}
