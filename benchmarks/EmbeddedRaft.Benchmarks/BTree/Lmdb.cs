using System.Runtime.InteropServices;

namespace EmbeddedRaft.Benchmarks.BTree;

/// <summary>
/// The few LMDB calls the side-by-side benchmarks need, bound to Debian's <c>liblmdb.so.0</c>
/// (packages <c>liblmdb0</c>/<c>liblmdb-dev</c>). Only the benchmark project references LMDB; the
/// library never does.
/// </summary>
internal static partial class Lmdb
{
    public const uint NoSubdirectory = 0x4000;
    public const uint ReadOnly = 0x20000;
    public const uint Create = 0x40000;
    public const uint Append = 0x20000;
    public const int CursorFirst = 0;
    public const int CursorNext = 8;
    public const int NotFound = -30798;

    private const string Library = "liblmdb.so.0";

    [StructLayout(LayoutKind.Sequential)]
    public struct Value
    {
        public nuint Size;
        public nint Data;
    }

    [LibraryImport(Library, EntryPoint = "mdb_env_create")]
    public static partial int EnvCreate(out nint env);

    [LibraryImport(Library, EntryPoint = "mdb_env_set_mapsize")]
    public static partial int EnvSetMapSize(nint env, nuint size);

    [LibraryImport(Library, EntryPoint = "mdb_env_open", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int EnvOpen(nint env, string path, uint flags, int mode);

    [LibraryImport(Library, EntryPoint = "mdb_env_close")]
    public static partial void EnvClose(nint env);

    [LibraryImport(Library, EntryPoint = "mdb_txn_begin")]
    public static partial int TxnBegin(nint env, nint parent, uint flags, out nint txn);

    [LibraryImport(Library, EntryPoint = "mdb_txn_commit")]
    public static partial int TxnCommit(nint txn);

    [LibraryImport(Library, EntryPoint = "mdb_txn_abort")]
    public static partial void TxnAbort(nint txn);

    [LibraryImport(Library, EntryPoint = "mdb_dbi_open")]
    public static partial int DbiOpen(nint txn, nint name, uint flags, out uint dbi);

    [LibraryImport(Library, EntryPoint = "mdb_put")]
    public static partial int Put(nint txn, uint dbi, ref Value key, ref Value data, uint flags);

    [LibraryImport(Library, EntryPoint = "mdb_get")]
    public static partial int Get(nint txn, uint dbi, ref Value key, out Value data);

    [LibraryImport(Library, EntryPoint = "mdb_cursor_open")]
    public static partial int CursorOpen(nint txn, uint dbi, out nint cursor);

    [LibraryImport(Library, EntryPoint = "mdb_cursor_get")]
    public static partial int CursorGet(nint cursor, ref Value key, ref Value data, int op);

    [LibraryImport(Library, EntryPoint = "mdb_cursor_close")]
    public static partial void CursorClose(nint cursor);

    public static void Check(int rc, string call)
    {
        if (rc != 0)
        {
            throw new InvalidOperationException($"LMDB {call} failed with {rc}.");
        }
    }
}
