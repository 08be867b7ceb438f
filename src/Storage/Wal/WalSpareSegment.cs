using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Storage.Wal;

/// <summary>
/// One released segment file kept to be reused by the next segment cut instead of being deleted,
/// so the log writes into blocks it wrote before. Why: on the test VM's virtual disk (ext4 mounted
/// <c>discard</c>, no journal), deleting a 64 MiB segment discards its blocks synchronously
/// (125–170 ms per unlink, stalling the other logs' flushes), and the next segment's fresh blocks
/// are slower to write and flush than reused ones (docs/benchmarks.md, "WAL flush cost per byte,
/// session 26"). Thread-safe: the release (any thread) offers, the cut (the write lane) takes.
/// </summary>
/// <remarks>
/// <para>The spare's name ends in <c>.wal.tmp</c> (<see cref="WalFormat.TempSuffix"/>), never a
/// segment name, so a reader or an open never takes it for part of the log: an open deletes it
/// with the other temporaries, as after a crash during a release or a cut.</para>
/// <para>The file is reused as it is, not zeroed (zeroing in place would turn its blocks back into
/// unwritten extents, and the first flush into each would again write an extent change). The
/// segment made from it is flagged recycled in its header and its frames tagged with its sequence
/// (<see cref="FrameTag"/>), so the previous life's frames past the tail fail this life's checks;
/// the open's rules for a recycled tail do not expect zeros there (docs/formats.md, "Recycled
/// segments"). Its header and a zero trailer are written and flushed before it is renamed to its
/// segment name and the directory synced (<see cref="WalRecovery.CreateSegment"/>).</para>
/// <para>The segment cut decides, under the log's lock, whether its segment is recycled (its
/// header and the frames after it are encoded then), so it reserves the spare
/// (<see cref="TryReserve"/>); the write lane takes it later (<see cref="TakeReserved"/>).</para>
/// </remarks>
internal sealed class WalSpareSegment(IFileSystem fileSystem, string directory, long segmentSizeBytes)
{
    /// <summary>The spare's file name: a temporary, deleted by an open.</summary>
    public const string FileName = "spare" + WalFormat.SegmentExtension + WalFormat.TempSuffix;

    private readonly object _lock = new();
    // Guarded by _lock: whether the spare file exists (only this object renames to or from its path).
    private bool _present;
    // Guarded by _lock: the kept spare is promised to a segment cut not yet created (implies _present).
    private bool _reserved;
    // Guarded by _lock: a keep is under way (its file-system calls run outside the lock).
    private bool _keeping;
    // Guarded by _lock: open readers hold released segments' files; none is reused while one is open.
    private int _openReaders;

    public string Path { get; } = System.IO.Path.Combine(directory, FileName);

    /// <summary>A reader was opened: until it is disposed, released segments are deleted, not kept (a reader may still be reading one through its open file).</summary>
    public void ReaderOpened()
    {
        lock (_lock)
        {
            _openReaders++;
        }
    }

    public void ReaderClosed()
    {
        lock (_lock)
        {
            if (--_openReaders < 0)
            {
                throw new InvariantViolationException("More readers closed than opened.");
            }
        }
    }

    /// <summary>
    /// Keeps a released segment (already detached from the log) as the spare by renaming it, when
    /// no spare is kept, no reader is open and the file is a whole segment long. Returns false when
    /// the caller must delete it instead (and sync the directory). A kept one's rename is synced here.
    /// </summary>
    /// <remarks>
    /// The spare is offered to cuts only after the directory is synced with the rename: a cut
    /// writes the next segment's header into the file, and were the rename still undone by a
    /// crash, the released segment's name would point at that header (an open would refuse the
    /// log: the header disagrees with the name). The file-system calls run outside the lock, so a
    /// cut (which asks under the log's lock) never waits for them; meanwhile no second segment is
    /// kept. Releases are serialized by the log, so one keep runs at a time.
    /// </remarks>
    public bool TryKeep(SegmentInfo released)
    {
        lock (_lock)
        {
            if (_present || _keeping || _openReaders > 0)
            {
                return false;
            }

            _keeping = true;
        }

        bool kept = false;
        try
        {
            using (var file = fileSystem.Open(released.Path, FileOpenMode.ReadOnly))
            {
                if (file.Length != segmentSizeBytes)
                {
                    return false;
                }
            }

            fileSystem.Rename(released.Path, Path);
            fileSystem.SyncDirectory(directory);
            kept = true;
        }
        finally
        {
            lock (_lock)
            {
                // Failed, the file stays under the spare's name unoffered (an open deletes it; a later keep renames over it).
                _keeping = false;
                _present = kept;
            }
        }

        return true;
    }

    /// <summary>Promises the kept spare, if any and not promised already, to the caller's segment cut. No file-system call: the log's lock may be held.</summary>
    public bool TryReserve()
    {
        lock (_lock)
        {
            if (!_present || _reserved)
            {
                return false;
            }

            _reserved = true;
            return true;
        }
    }

    /// <summary>Renames the reserved spare to <paramref name="destination"/> and returns true (false when none is reserved); the caller then owns that file.</summary>
    public bool TakeReserved(string destination)
    {
        lock (_lock)
        {
            if (!_reserved)
            {
                return false;
            }

            // The caller owns the file from here on; renamed outside the lock (a failed rename
            // leaves it under the spare's name, unoffered: an open deletes it).
            _present = false;
            _reserved = false;
        }

        fileSystem.Rename(Path, destination);
        return true;
    }
}
