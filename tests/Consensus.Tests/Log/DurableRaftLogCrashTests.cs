using EmbeddedRaft.Consensus.Log;
using EmbeddedRaft.TestSupport.IO;
using static EmbeddedRaft.Consensus.Tests.Log.LogTestKit;

namespace EmbeddedRaft.Consensus.Tests.Log;

/// <summary>
/// A scripted host sequence, crashed after every file-system operation in turn (unsynced writes
/// dropped, kept or torn by the seeded disk), then reopened: the log must hold exactly the model's
/// state after some prefix of the records written, no shorter than what was synced. A synced call
/// is never lost, and nothing that was not written appears.
/// </summary>
public sealed class DurableRaftLogCrashTests
{
    [TestCaseSource(nameof(CrashSeeds))]
    public async Task ACrashAtAnyOperationReopensToAPrefixNoShorterThanWhatWasSynced(int seed)
    {
        TestContext.Out.WriteLine(Reproduce(seed));
        var script = LogScript.Generate(seed, callCount: 40);
        var options = Options(cachedEntryBytes: 600, retainedEntries: script.RetainedEntries, segmentSizeBytes: 4096);

        // A run without a crash: every state reachable, and how many operations the script makes.
        var clean = new FaultInjectingFileSystem(seed);
        await using (var log = await DurableRaftLog.OpenAsync(clean, LogDirectory, options))
        {
            foreach (var call in script.Calls)
            {
                await call(log);
            }

            Assert.That(LogScript.Fingerprint(log), Is.EqualTo(script.FinalLiveState), "the live log differs from the model");
        }

        long operations = clean.OperationCount;
        for (long crashAt = 1; crashAt <= operations; crashAt++)
        {
            var disk = new FaultInjectingFileSystem(unchecked((seed * 7919) + (int)crashAt)) { CrashAfterOperation = crashAt };
            int synced = 0;
            int started = 0;
            try
            {
                await using var log = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
                for (int i = 0; i < script.Calls.Count; i++)
                {
                    started = script.RecordsAfterCall[i];
                    await script.Calls[i](log);
                    if (script.CallIsDurable[i])
                    {
                        synced = script.RecordsAfterCall[i];
                    }
                }
            }
            catch (Exception) when (disk.IsCrashed)
            {
            }

            if (!disk.IsCrashed)
            {
                continue; // disposal made the last writes; nothing to crash there
            }

            disk.Restart();
            await using var reopened = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
            var found = LogScript.Fingerprint(reopened);
            var allowed = Enumerable.Range(synced, started - synced + 1).Select(j => script.States[j]).ToList();
            Assert.That(allowed, Does.Contain(found), $"crash after operation {crashAt}: synced {synced} records, started {started}; {Reproduce(seed)}");

            // The reopened log keeps working: one more synced save survives a clean reopen.
            ulong next = reopened.LastIndex() + 1;
            var hardState = reopened.InitialState().HardState;
            await reopened.SaveAsync(hardState with { Term = Math.Max(hardState.Term, 1000) }, Entries(next, next + 2, term: 1000), sync: true);
            var expected = LogScript.Fingerprint(reopened);
            await reopened.DisposeAsync();
            await using var again = await DurableRaftLog.OpenAsync(disk, LogDirectory, options);
            Assert.That(LogScript.Fingerprint(again), Is.EqualTo(expected), $"after recovering from a crash after operation {crashAt}; {Reproduce(seed)}");
        }
    }

    private static IEnumerable<int> CrashSeeds() => Seeds(1, 3);
}
