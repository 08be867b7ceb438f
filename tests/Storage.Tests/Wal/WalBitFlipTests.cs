using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport.IO;

namespace EmbeddedRaft.Storage.Tests.Wal;

/// <summary>
/// A bit flipped anywhere in a log is never returned as data: inside the records (headers,
/// frames, padding, the sync mark a clean close leaves, the zero word that ends the frames, the
/// last segment's trailer) it is refused with the exact file and frame offset; in the unused space
/// after the records it touches no record (the last segment cuts it as a torn tail; a finished
/// segment's trailer is read only when that segment is the last).
/// </summary>
public sealed class WalBitFlipTests
{
    private static readonly WalOptions s_options = WalTestKit.SmallSegments();

    private static IEnumerable<int> Seeds() => WalTestKit.Seeds(3000, 20);

    [TestCaseSource(nameof(Seeds))]
    public async Task AFlippedBitIsAlwaysDetectedAndNeverReturnedAsData(int seed)
    {
        TestContext.Out.WriteLine($"seed {seed} ({WalTestKit.Reproduce(seed)})");
        var random = new Random(seed);
        var original = new FaultInjectingFileSystem(seed);
        var appended = new List<StoredRecord>();
        List<string> segments;
        await using (var log = WriteAheadLog.Open(original, WalTestKit.Directory, s_options))
        {
            for (ulong i = 1; i <= 40; i++)
            {
                var payload = WalTestKit.Payload(random, 0, 700);
                appended.Add(new StoredRecord(1, i, payload, await log.AppendAsync(1, payload, i, sync: false)));
            }

            await log.SyncAsync();
            segments = log.SegmentPaths.ToList();
        }

        int refused = 0, repaired = 0, untouched = 0;
        for (int trial = 0; trial < 150; trial++)
        {
            var fs = WalTestKit.CloneDurably(original, segments, seed + trial);
            int segmentNumber = random.Next(segments.Count);
            string path = segments[segmentNumber];
            bool isLast = segmentNumber == segments.Count - 1;
            var frames = FrameStarts(appended, segmentNumber, isLast);
            // The records, and the zero word that ends them (the room the segment reserves at its end always holds it).
            long checkedEnd = frames[^1] + 8;
            long trailer = s_options.SegmentSizeBytes - WalFormat.SegmentTrailerSizeBytes;
            // Most flips inside the records; some in the unused, preallocated rest of the file, the trailer included.
            bool inside = random.Next(4) != 0;
            long offset = inside ? random.NextInt64(0, checkedEnd) : random.NextInt64(checkedEnd, s_options.SegmentSizeBytes);
            int bit = random.Next(8);
            fs.FlipBit(path, offset, bit);
            string where = $"seed {seed}, trial {trial}: bit {bit} of byte {offset} in {path}; {WalTestKit.Reproduce(seed)}";

            List<StoredRecord>? read = null;
            CorruptionException? error = null;
            try
            {
                await using var log = WriteAheadLog.Open(fs, WalTestKit.Directory, s_options);
                read = WalTestKit.ReadAll(log);
                repaired += log.TailRepair is null ? 0 : 1;
            }
            catch (CorruptionException e)
            {
                error = e;
            }

            if (isLast && offset >= trailer)
            {
                // The last segment's trailer is written whole or not at all: a flipped bit in it is damage.
                Assert.That(error, Is.Not.Null, $"not detected; {where}");
                Assert.That((error!.Path, error.Offset), Is.EqualTo((path, trailer)), where);
                refused++;
            }
            else if (offset < checkedEnd)
            {
                Assert.That(error, Is.Not.Null, $"not detected; {where}");
                Assert.That(error!.Path, Is.EqualTo(path), where);
                Assert.That(error.Offset, Is.EqualTo(frames.Last(f => f <= offset)), $"names the frame that holds the byte; {where}");
                refused++;
            }
            else
            {
                Assert.That(error, Is.Null, $"a flip outside every record is no corruption; {where}");
                WalRoundTripTests.AssertSameRecords(read!, appended);
                untouched++;
            }
        }

        TestContext.Out.WriteLine($"refused {refused}, outside the records {untouched} (of which cut as a torn tail {repaired})");
    }

    /// <summary>The offsets where frames start in one segment: 0 (its header), each record, the sync mark of the last segment, and the end (zero) word.</summary>
    private static List<long> FrameStarts(List<StoredRecord> records, int sequence, bool isLast)
    {
        var starts = new List<long> { 0 };
        starts.AddRange(records.Where(r => r.Position.Sequence == sequence).Select(r => r.Position.Offset));
        var last = records.LastOrDefault(r => r.Position.Sequence == sequence);
        long end = last is null ? WalFormat.SegmentHeaderFrameSizeBytes : last.Position.Offset + WalFormat.FrameSize(last.Payload.Length);
        if (isLast && last is not null)
        {
            starts.Add(end); // the sync mark written by the clean close
            end += WalFormat.SyncMarkFrameSizeBytes;
        }

        starts.Add(end);
        return starts;
    }
}
