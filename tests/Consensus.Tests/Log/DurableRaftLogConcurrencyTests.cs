using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.Consensus.Messages;
using EmbeddedRaft.Storage.Wal;
using EmbeddedRaft.TestSupport;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// With the production write-ahead log (background writer threads), entries handed to SaveAsync
/// are readable at once, while the write is in flight, and reads from another thread beside a
/// stream of saves always see a consistent log with the same bytes that were saved.
/// </summary>
public sealed class DurableRaftLogConcurrencyTests
{
    [Test]
    public async Task EntriesAreReadableAsSoonAsSaveAsyncIsCalled()
    {
        var disk = new FaultInjectingFileSystem(1);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, BackgroundOptions(cachedEntryBytes: 0));
        for (ulong first = 1; first < 200; first += 10)
        {
            var entries = Entries(first, first + 9, term: 1, dataBytes: 50);
            var saving = log.SaveAsync(new HardState(1, 1, first - 1), entries, sync: true);

            // Before awaiting: the core reads what it handed to the host right away.
            Assert.That(log.LastIndex(), Is.EqualTo(first + 9));
            Assert.That(log.Entries(first, first + 10, ulong.MaxValue).ToArray(), Is.EqualTo(entries));
            await saving;
        }
    }

    [Test]
    public async Task ReadsFromAnotherThreadBesideSavesSeeTheSavedBytes()
    {
        var disk = new FaultInjectingFileSystem(2);
        var all = Entries(1, 3000, term: 1, dataBytes: 40);
        await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, BackgroundOptions(cachedEntryBytes: 4000));
        using var stop = new CancellationTokenSource();
        var reader = Task.Run(() =>
        {
            var random = new Random(2);
            long reads = 0;
            while (!stop.IsCancellationRequested)
            {
                ulong last = log.LastIndex();
                if (last == 0)
                {
                    continue;
                }

                ulong low = 1 + (ulong)random.NextInt64((long)last);
                ulong high = Math.Min(last + 1, low + (ulong)random.Next(1, 50));
                var got = log.Entries(low, high, ulong.MaxValue).ToArray();
                if (!got.SequenceEqual(all.AsSpan((int)low - 1, (int)(high - low)).ToArray()))
                {
                    throw new AssertionException($"Entries [{low}, {high}) differ from what was saved.");
                }

                reads++;
            }

            return reads;
        });

        for (int i = 0; i < all.Length; i += 30)
        {
            await log.SaveAsync(new HardState(1, 1, (ulong)i), all.AsMemory(i, 30), sync: i % 60 == 0);
        }

        await log.SaveAsync(null, ReadOnlyMemory<Entry>.Empty, sync: true);
        stop.Cancel();
        long total = await reader.WaitAsync(Waits.Limit);
        Assert.That(total, Is.GreaterThan(0));
        Assert.That(log.CachedBytes, Is.LessThanOrEqualTo(4000));
    }

    private static DurableRaftLogOptions BackgroundOptions(long cachedEntryBytes) =>
        Options(cachedEntryBytes) with { Wal = Options().Wal with { Threading = WalThreading.BackgroundThreads } };
}
