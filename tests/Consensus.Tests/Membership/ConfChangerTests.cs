using EmbeddedRaft.Consensus.Membership;
using EmbeddedRaft.Consensus.Messages;

namespace EmbeddedRaft.Consensus.Tests.Membership;

/// <summary>The configuration arithmetic of <see cref="ConfChanger"/>: outcomes and every refusal.</summary>
public class ConfChangerTests
{
    private static readonly ConfState s_three = new([1, 2, 3]);

    private static ConfChange Parse(string text, ConfChangeTransition transition = ConfChangeTransition.Auto) =>
        new(text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(t => new ConfChangeItem(
            t[0] switch { 'v' => ConfChangeType.AddVoter, 'l' => ConfChangeType.AddLearner, _ => ConfChangeType.RemoveNode },
            ulong.Parse(t[1..], System.Globalization.CultureInfo.InvariantCulture))), transition);

    [Test]
    public void OneChangeIsASingleStep()
    {
        Assert.That(ConfChanger.Apply(s_three, Parse("v4")), Is.EqualTo(new ConfState([1, 2, 3, 4])));
        Assert.That(ConfChanger.Apply(s_three, Parse("l4")), Is.EqualTo(new ConfState([1, 2, 3], learners: [4])));
        Assert.That(ConfChanger.Apply(s_three, Parse("r3")), Is.EqualTo(new ConfState([1, 2], removed: [3])));
    }

    [Test]
    public void SeveralChangesEnterAJointConfigurationLeftAutomatically()
    {
        var joint = ConfChanger.Apply(s_three, Parse("v4 r1"));

        Assert.That(joint, Is.EqualTo(new ConfState([2, 3, 4], [1, 2, 3], autoLeave: true)));
        Assert.That(ConfChanger.Apply(joint, ConfChange.LeaveJoint()), Is.EqualTo(new ConfState([2, 3, 4], removed: [1])));
    }

    [Test]
    public void ADemotedOutgoingVoterWaitsInLearnersNextUntilTheJointStateIsLeft()
    {
        var joint = ConfChanger.Apply(s_three, ConfChange.Demote(3));

        Assert.That(joint, Is.EqualTo(new ConfState([1, 2], [1, 2, 3], learnersNext: [3], autoLeave: true)));
        Assert.That(ConfChanger.Apply(joint, ConfChange.LeaveJoint()), Is.EqualTo(new ConfState([1, 2], learners: [3])));
    }

    [Test]
    public void PromotingALearnerKeepsItsIdAndMakesItAVoter()
    {
        var withLearner = new ConfState([1, 2, 3], learners: [4]);

        Assert.That(ConfChanger.Apply(withLearner, ConfChange.Promote(4)), Is.EqualTo(new ConfState([1, 2, 3, 4])));
    }

    [Test]
    public void SimpleTransitionAcceptsSeveralLearnersAtOnce()
    {
        Assert.That(
            ConfChanger.Apply(s_three, Parse("l4 l5 v6", ConfChangeTransition.Simple)),
            Is.EqualTo(new ConfState([1, 2, 3, 6], learners: [4, 5])));
    }

    [TestCase("r1 r2 r3", ConfChangeTransition.JointExplicit, ConfChangeRejectReason.RemovesAllVoters)]
    [TestCase("v4 v5", ConfChangeTransition.Simple, ConfChangeRejectReason.TooManyVoterChanges)]
    [TestCase("r1 l4 v5", ConfChangeTransition.Simple, ConfChangeRejectReason.TooManyVoterChanges)]
    [TestCase("v0", ConfChangeTransition.Auto, ConfChangeRejectReason.InvalidRequest)]
    [TestCase("v4 r4", ConfChangeTransition.Auto, ConfChangeRejectReason.InvalidRequest)]
    [TestCase("v2", ConfChangeTransition.Auto, ConfChangeRejectReason.InvalidRequest)]
    [TestCase("r9", ConfChangeTransition.Auto, ConfChangeRejectReason.InvalidRequest)]
    [TestCase("", ConfChangeTransition.Auto, ConfChangeRejectReason.NotJoint)]
    [TestCase("", ConfChangeTransition.JointExplicit, ConfChangeRejectReason.InvalidRequest)]
    public void InvalidChangesAreRefusedWithASpecificReason(string changes, ConfChangeTransition transition, ConfChangeRejectReason reason)
    {
        var ex = Assert.Throws<ConfChangeRejectedException>(() => ConfChanger.Apply(s_three, Parse(changes, transition)));

        Assert.That(ex!.Reason, Is.EqualTo(reason), ex.Message);
    }

    [Test]
    public void RemovingTheLastVoterIsRefused()
    {
        var ex = Assert.Throws<ConfChangeRejectedException>(() => ConfChanger.Apply(new ConfState([1], learners: [2]), Parse("r1")));

        Assert.That(ex!.Reason, Is.EqualTo(ConfChangeRejectReason.RemovesAllVoters));
        Assert.That(ex.Message, Does.Contain("r1"));
    }

    [Test]
    public void AJointConfigurationRefusesAnotherJointOrSingleStepChange()
    {
        var joint = ConfChanger.Apply(s_three, Parse("v4 r1", ConfChangeTransition.JointExplicit));

        Assert.That(Assert.Throws<ConfChangeRejectedException>(() => ConfChanger.Apply(joint, Parse("v5 v6")))!.Reason, Is.EqualTo(ConfChangeRejectReason.AlreadyJoint));
        Assert.That(Assert.Throws<ConfChangeRejectedException>(() => ConfChanger.Apply(joint, Parse("v5")))!.Reason, Is.EqualTo(ConfChangeRejectReason.AlreadyJoint));
    }

    [Test]
    public void RemovedIdsAreNeverReused()
    {
        var removed = ConfChanger.Apply(s_three, Parse("r3"));

        foreach (var change in new[] { "v3", "l3", "r3" })
        {
            var ex = Assert.Throws<ConfChangeRejectedException>(() => ConfChanger.Apply(removed, Parse(change)));
            Assert.That(ex!.Reason, Is.EqualTo(ConfChangeRejectReason.IdReused), change);
            Assert.That(ex.Message, Does.Contain("node 3"));
        }
    }

    [Test]
    public void AnOutgoingVoterRemovedWhileJointIsRecordedAsRemovedOnlyWhenTheJointStateIsLeft()
    {
        var joint = ConfChanger.Apply(s_three, Parse("r3 l4"));

        Assert.That(joint.Removed, Is.Empty);
        Assert.That(joint.IsVoter(3), Is.True, "still votes in the outgoing half");
        Assert.That(ConfChanger.Apply(joint, ConfChange.LeaveJoint()).Removed, Is.EqualTo(new ulong[] { 3 }));
    }

    [Test]
    public void MalformedConfigurationsAreDescribed()
    {
        Assert.That(new ConfState([1, 2], learners: [2]).Validate(), Does.Contain("node 2"));
        Assert.That(new ConfState([1, 2], learnersNext: [3]).Validate(), Does.Contain("learner-next 3"));
        Assert.That(new ConfState([1, 2], autoLeave: true).Validate(), Does.Contain("auto-leave"));
        Assert.That(new ConfState([1, 2], removed: [2]).Validate(), Does.Contain("removed node 2"));
        Assert.That(new ConfState([1, 2], [1, 3], learnersNext: [3], autoLeave: true, removed: [4]).Validate(), Is.Null);
    }
}
