using System.Runtime.InteropServices;

namespace EmbeddedRaft.Storage.IO;

/// <summary>
/// A minimal io_uring (Linux) that runs one file's <c>fdatasync</c> without blocking the thread
/// that asks for it: <see cref="TrySubmitDataSync"/> puts an <c>IORING_OP_FSYNC</c> with
/// <c>IORING_FSYNC_DATASYNC</c> on the submission ring and returns; the ring's own reaper thread,
/// blocked in <c>io_uring_enter(GETEVENTS)</c>, calls the submitter's callback with the result.
/// Raw system calls (no liburing): <c>io_uring_setup</c>, three <c>mmap</c>s (submission ring,
/// completion ring, entries), <c>io_uring_enter</c>. At most one flush is in flight (the write-ahead
/// log's flush lane guarantees it; checked always).
/// </summary>
/// <remarks>
/// Invariants: a submitted flush's callback runs exactly once, on the reaper thread, with the
/// kernel's result (0, or a negative errno that the caller must treat as a failed fsync: never
/// retried); <see cref="Dispose"/> waits for the flush in flight, stops the reaper, unmaps the
/// three regions and closes the ring's descriptor.
/// </remarks>
internal sealed unsafe class UringFlusher : IDisposable
{
    private const long SyscallIoUringSetup = 425; // the same number on x86-64 and arm64
    private const long SyscallIoUringEnter = 426;
    private const uint EnterGetEvents = 1;
    private const byte OpNop = 0;
    private const byte OpFsync = 3;
    private const uint FsyncDataSync = 1;
    private const long OffsetSubmissionRing = 0;
    private const long OffsetCompletionRing = 0x8000000;
    private const long OffsetEntries = 0x10000000;
    private const int ProtReadWrite = 3;
    private const int MapSharedPopulate = 0x01 | 0x8000;
    private const int ErrorInterrupted = 4; // EINTR
    private const ulong StopToken = ulong.MaxValue;
    private const int EntrySize = 64;
    private const int CompletionSize = 16;

    private readonly object _lock = new();
    private readonly int _ringFd;
    private readonly nint _submissionRing;
    private readonly nuint _submissionRingLength;
    private readonly nint _completionRing;
    private readonly nuint _completionRingLength;
    private readonly nint _entries;
    private readonly nuint _entriesLength;
    private readonly uint* _sqTail;
    private readonly uint _sqMask;
    private readonly uint* _sqArray;
    private readonly uint* _cqHead;
    private readonly uint* _cqTail;
    private readonly uint _cqMask;
    private readonly byte* _cqes;
    private readonly Thread _reaper;

    // Guarded by _lock.
    private Action<int>? _pending;
    private ulong _nextToken;
    private bool _stopping;
    private bool _disposed;

    private UringFlusher(int ringFd, in Params p, nint sq, nuint sqLength, nint cq, nuint cqLength, nint entries, nuint entriesLength)
    {
        _ringFd = ringFd;
        _submissionRing = sq;
        _submissionRingLength = sqLength;
        _completionRing = cq;
        _completionRingLength = cqLength;
        _entries = entries;
        _entriesLength = entriesLength;
        _sqTail = (uint*)(sq + (nint)p.SqTail);
        _sqMask = *(uint*)(sq + (nint)p.SqRingMask);
        _sqArray = (uint*)(sq + (nint)p.SqArray);
        _cqHead = (uint*)(cq + (nint)p.CqHead);
        _cqTail = (uint*)(cq + (nint)p.CqTail);
        _cqMask = *(uint*)(cq + (nint)p.CqRingMask);
        _cqes = (byte*)(cq + (nint)p.CqCqes);
        _reaper = new Thread(Reap) { IsBackground = true, Name = "EmbeddedRaft WAL io_uring reaper" };
        _reaper.UnsafeStart();
    }

    /// <summary>How many rings are open in the process (for tests: dispose closes them).</summary>
    internal static int OpenRings;

    /// <summary>
    /// A ring, or null where there is none to have: not Linux, not x86-64 or arm64, or any setup
    /// failure (io_uring disabled, seccomp, an old kernel, no memory) — the caller then flushes
    /// synchronously, as without it. Never throws.
    /// </summary>
    public static UringFlusher? TryCreate()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
        {
            return null;
        }

        try
        {
            Params p = default;
            int fd = (int)Syscall(SyscallIoUringSetup, 4, (nint)(&p), 0, 0, 0, 0);
            if (fd < 0)
            {
                return null;
            }

            nuint sqLength = p.SqArray + (p.SqEntries * sizeof(uint));
            nuint cqLength = p.CqCqes + (p.CqEntries * CompletionSize);
            nuint entriesLength = p.SqEntries * EntrySize;
            nint sq = Mmap(0, sqLength, ProtReadWrite, MapSharedPopulate, fd, OffsetSubmissionRing);
            nint cq = Mmap(0, cqLength, ProtReadWrite, MapSharedPopulate, fd, OffsetCompletionRing);
            nint entries = Mmap(0, entriesLength, ProtReadWrite, MapSharedPopulate, fd, OffsetEntries);
            if (sq == -1 || cq == -1 || entries == -1)
            {
                Unmap(sq, sqLength);
                Unmap(cq, cqLength);
                Unmap(entries, entriesLength);
                _ = NativeMethods.Close(fd);
                return null;
            }

            Interlocked.Increment(ref OpenRings);
            return new UringFlusher(fd, p, sq, sqLength, cq, cqLength, entries, entriesLength);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>
    /// Submits an <c>fdatasync</c> of <paramref name="fd"/>; <paramref name="done"/> is called on
    /// the reaper thread with 0 or a negative errno. False (and <paramref name="done"/> never
    /// called) when the submission failed: nothing was submitted, flush synchronously instead.
    /// The descriptor must stay open until <paramref name="done"/> runs.
    /// </summary>
    public bool TrySubmitDataSync(int fd, Action<int> done)
    {
        lock (_lock)
        {
            if (_stopping)
            {
                return false;
            }

            if (_pending is not null)
            {
                throw new InvariantViolationException("One io_uring flush at a time.");
            }

            _pending = done;
            if (Submit(OpFsync, fd, FsyncDataSync, ++_nextToken))
            {
                return true;
            }

            _pending = null;
            return false;
        }
    }

    /// <summary>Waits for the flush in flight (its callback has run when this returns), stops the reaper, unmaps the rings and closes the descriptor.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _stopping = true;
            while (_pending is not null)
            {
                Monitor.Wait(_lock);
            }

            if (!Submit(OpNop, -1, 0, StopToken))
            {
                throw new InvariantViolationException("The io_uring reaper could not be stopped.");
            }
        }

        _reaper.Join();
        Unmap(_submissionRing, _submissionRingLength);
        Unmap(_completionRing, _completionRingLength);
        Unmap(_entries, _entriesLength);
        _ = NativeMethods.Close(_ringFd);
        Interlocked.Decrement(ref OpenRings);
    }

    /// <summary>Under <see cref="_lock"/>: one entry on the submission ring, then <c>io_uring_enter</c> to submit it (no wait).</summary>
    private bool Submit(byte opcode, int fd, uint fsyncFlags, ulong token)
    {
        uint tail = *_sqTail;
        uint index = tail & _sqMask;
        byte* entry = (byte*)_entries + (index * EntrySize);
        new Span<byte>(entry, EntrySize).Clear();
        entry[0] = opcode;
        *(int*)(entry + 4) = fd;
        *(uint*)(entry + 28) = fsyncFlags;
        *(ulong*)(entry + 32) = token;
        _sqArray[index] = index;
        Volatile.Write(ref *_sqTail, tail + 1); // release: the entry is visible before the tail
        while (true)
        {
            long submitted = Syscall(SyscallIoUringEnter, _ringFd, 1, 0, 0, 0, 0);
            if (submitted == 1)
            {
                return true;
            }

            if (submitted < 0 && Marshal.GetLastPInvokeError() == ErrorInterrupted)
            {
                continue;
            }

            // Not taken: withdraw it, so the ring stays as it was.
            Volatile.Write(ref *_sqTail, tail);
            return false;
        }
    }

    /// <summary>The reaper: blocks until a completion, hands it to the pending callback, ends at the stop entry.</summary>
    private void Reap()
    {
        bool stop = false;
        while (!stop)
        {
            uint head = *_cqHead;
            uint tail = Volatile.Read(ref *_cqTail); // acquire: the entries up to tail are written
            if (head == tail)
            {
                _ = Syscall(SyscallIoUringEnter, _ringFd, 0, 1, EnterGetEvents, 0, 0); // EINTR: just look again
                continue;
            }

            for (; head != tail; head++)
            {
                byte* cqe = _cqes + ((head & _cqMask) * CompletionSize);
                ulong token = *(ulong*)cqe;
                int result = *(int*)(cqe + 8);
                if (token == StopToken)
                {
                    stop = true;
                    continue;
                }

                Action<int>? done;
                lock (_lock)
                {
                    done = _pending;
                    _pending = null;
                    if (done is null || token != _nextToken)
                    {
                        throw new InvariantViolationException("An io_uring completion must answer the flush in flight.");
                    }
                }

                done(result);
                lock (_lock)
                {
                    Monitor.PulseAll(_lock); // a Dispose waiting for the flush in flight
                }
            }

            Volatile.Write(ref *_cqHead, head);
        }
    }

    private static void Unmap(nint address, nuint length)
    {
        if (address != 0 && address != -1)
        {
            _ = Munmap(address, length);
        }
    }

    [DllImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static extern long Syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int Munmap(nint address, nuint length);

    /// <summary><c>struct io_uring_params</c> (120 bytes), with the two offset structs flattened.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Params
    {
        public uint SqEntries;
        public uint CqEntries;
        public uint Flags;
        public uint SqThreadCpu;
        public uint SqThreadIdle;
        public uint Features;
        public uint WqFd;
        public uint Resv0;
        public uint Resv1;
        public uint Resv2;
        public uint SqHead;
        public uint SqTail;
        public uint SqRingMask;
        public uint SqRingEntries;
        public uint SqFlags;
        public uint SqDropped;
        public uint SqArray;
        public uint SqResv1;
        public ulong SqUserAddr;
        public uint CqHead;
        public uint CqTail;
        public uint CqRingMask;
        public uint CqRingEntries;
        public uint CqOverflow;
        public uint CqCqes;
        public uint CqFlags;
        public uint CqResv1;
        public ulong CqUserAddr;
    }
}
