using EmbeddedRaft.Storage.BTree;

namespace EmbeddedRaft.Storage.Tests.BTree;

/// <summary>The tree's key comparison is plain byte-wise order, whatever shortcut it takes.</summary>
public class KeyOrderTests
{
    [Test]
    public void CompareKeysAgreesWithByteWiseOrderOnKeysSharingLongPrefixes()
    {
        const int Seed = 31;
        TestContext.Out.WriteLine($"seed {Seed}");
        var random = new Random(Seed);
        for (int i = 0; i < 200_000; i++)
        {
            // A two-letter alphabet makes long shared prefixes and equal first eight bytes common.
            var left = new byte[random.Next(0, 20)];
            var right = new byte[random.Next(0, 20)];
            for (int j = 0; j < left.Length; j++)
            {
                left[j] = random.Next(2) == 0 ? (byte)0x00 : (byte)0xFF;
            }

            for (int j = 0; j < right.Length; j++)
            {
                right[j] = random.Next(2) == 0 ? (byte)0x00 : (byte)0xFF;
            }

            int expected = Math.Sign(left.AsSpan().SequenceCompareTo(right));
            Assert.That(Math.Sign(PageFormat.CompareKeys(left, right)), Is.EqualTo(expected), $"{Convert.ToHexString(left)} vs {Convert.ToHexString(right)} (seed {Seed})");
        }
    }
}
