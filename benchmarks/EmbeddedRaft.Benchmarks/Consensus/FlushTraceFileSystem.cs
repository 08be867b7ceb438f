using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using EmbeddedRaft.Benchmarks.IO;
using EmbeddedRaft.Storage.IO;

namespace EmbeddedRaft.Benchmarks.Consensus;

/// <summary>
/// The real file system with every call that reaches the disk recorded (a diagnostic for
/// <c>cluster-load</c> with the environment variable <c>CLUSTER_LOAD_FLUSH_TRACE=FILE</c>): each
/// flush with its duration, thread, and what was written to that file since its previous flush —
/// bytes, and for a write-ahead-log segment the frames by record type (entries, hard states,
/// snapshot markers, segment headers and sync marks), parsed from the written bytes; each directory
/// sync, rename, zeroing, delete and preallocation with its duration. Lines are appended to FILE
/// when the cluster is disposed, one per call: <c>row t_us dur_us node kind op thread bytes
/// entries first last hardstates markers other path</c>. The frames are parsed only for a write
/// that starts a segment's frame (the write-ahead log writes whole batches of frames); a segment
/// trailer write counts as other. A lock per call: not for A/B figures.
/// </summary>
internal sealed class FlushTraceFileSystem(string row) : ForwardingFileSystem(PhysicalFileSystem.Instance)
{
    private static readonly long Origin = Stopwatch.GetTimestamp();
    private readonly List<string> _lines = [];

    public override IStorageFile Open(string path, FileOpenMode mode) => new File(this, Inner.Open(path, mode));

    public override void DeleteFile(string path)
    {
        long start = Stopwatch.GetTimestamp();
        Inner.DeleteFile(path);
        Record(start, path, "delete", default);
    }

    public override void Rename(string sourcePath, string destinationPath)
    {
        long start = Stopwatch.GetTimestamp();
        Inner.Rename(sourcePath, destinationPath);
        Record(start, destinationPath, "rename", default);
    }

    public override void SyncDirectory(string directory)
    {
        long start = Stopwatch.GetTimestamp();
        Inner.SyncDirectory(directory);
        Record(start, directory, "dirsync", default);
    }

    /// <summary>Appends the recorded lines to <paramref name="file"/> and forgets them.</summary>
    public void WriteTo(string file)
    {
        lock (_lines)
        {
            System.IO.File.AppendAllLines(file, _lines);
            _lines.Clear();
        }
    }

    private void Record(long start, string path, string op, Pending written)
    {
        long end = Stopwatch.GetTimestamp();
        double t = (start - Origin) * 1e6 / Stopwatch.Frequency;
        double duration = (end - start) * 1e6 / Stopwatch.Frequency;
        string node = "-";
        int at = path.IndexOf("raftnode-", StringComparison.Ordinal);
        if (at >= 0 && at + 9 < path.Length)
        {
            node = path[at + 9].ToString();
        }

        string kind = path.EndsWith(".wal", StringComparison.Ordinal) ? "wal"
            : path.EndsWith(".tmp", StringComparison.Ordinal) ? "tmp"
            : path.Contains("/snap", StringComparison.Ordinal) ? (Path.HasExtension(path) ? "snap" : "snapdir")
            : path.EndsWith("/wal", StringComparison.Ordinal) ? "waldir"
            : "other";
        string thread = (Thread.CurrentThread.Name ?? "pool").Replace(' ', '_') + "#" + Environment.CurrentManagedThreadId.ToString(CultureInfo.InvariantCulture);
        string line = string.Create(CultureInfo.InvariantCulture, $"{row} {t:F0} {duration:F0} {node} {kind} {op} {thread} {written.Bytes} {written.Entries} {written.First} {written.Last} {written.HardStates} {written.Markers} {written.Other} {path}");
        lock (_lines)
        {
            _lines.Add(line);
        }
    }

    /// <summary>What was written to a file since its last flush.</summary>
    private struct Pending
    {
        public long Bytes;
        public int Entries;
        public ulong First;
        public ulong Last;
        public int HardStates;
        public int Markers;
        public int Other;

        /// <summary>Counts the frames of one write-ahead-log write that starts at a frame.</summary>
        public void AddFrames(ReadOnlySpan<byte> data)
        {
            int offset = 0;
            while (offset + 24 <= data.Length)
            {
                ulong word = BinaryPrimitives.ReadUInt64LittleEndian(data[offset..]);
                if (((word >> 40) & 0xFF) != 0xA5)
                {
                    Other++;
                    return; // a trailer, zeros, or not a frame start
                }

                int length = (int)(word & 0xFFFFFFFF);
                int type = (int)((word >> 32) & 0xFF);
                ulong index = BinaryPrimitives.ReadUInt64LittleEndian(data[(offset + 8)..]);
                switch (type)
                {
                    case 1:
                        Entries++;
                        First = First == 0 ? index : First;
                        Last = index;
                        break;
                    case 2:
                        HardStates++;
                        break;
                    case 3:
                        Markers++;
                        break;
                    default:
                        Other++;
                        break;
                }

                offset += 24 + length + ((8 - (length % 8)) % 8);
            }
        }
    }

    private sealed class File(FlushTraceFileSystem owner, IStorageFile inner) : ForwardingStorageFile(inner)
    {
        private readonly bool _wal = inner.Path.EndsWith(".wal", StringComparison.Ordinal) || inner.Path.EndsWith(".wal.tmp", StringComparison.Ordinal);
        private Pending _pending;

        public override void Write(long offset, ReadOnlySpan<byte> data)
        {
            Inner.Write(offset, data);
            Note(data);
        }

        public override void Write(long offset, IReadOnlyList<ReadOnlyMemory<byte>> buffers)
        {
            Inner.Write(offset, buffers);
            foreach (var buffer in buffers)
            {
                Note(buffer.Span);
            }
        }

        public override void Flush()
        {
            long start = Stopwatch.GetTimestamp();
            Inner.Flush();
            Pending written;
            lock (this)
            {
                written = _pending;
                _pending = default;
            }

            owner.Record(start, Path, "flush", written);
        }

        public override void Preallocate(long length)
        {
            long start = Stopwatch.GetTimestamp();
            Inner.Preallocate(length);
            owner.Record(start, Path, "preallocate", default);
        }

        private void Note(ReadOnlySpan<byte> data)
        {
            lock (this)
            {
                _pending.Bytes += data.Length;
                if (_wal)
                {
                    _pending.AddFrames(data);
                }
            }
        }
    }
}
