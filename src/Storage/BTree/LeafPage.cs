using System.Buffers.Binary;

namespace EmbeddedRaft.Storage.BTree;

/// <summary>
/// In-place editing of a leaf page buffer in page mode (see <see cref="Node"/>): the on-disk leaf
/// format (header, slot array, entries; see docs/btree.md) with every entry's bytes at the end of
/// the page and zeros between the slot array and the lowest entry. <c>dataStart</c> is the offset
/// of the lowest entry (the page size when there is none).
/// </summary>
internal static class LeafPage
{
    /// <summary>Makes <paramref name="buffer"/> an empty leaf.</summary>
    public static void InitEmpty(byte[] buffer, out int dataStart)
    {
        buffer.AsSpan().Clear();
        PageHeader.Of(buffer).Kind = PageKind.Leaf;
        dataStart = buffer.Length;
    }

    /// <summary>
    /// Copies the committed leaf <paramref name="committed"/> into <paramref name="buffer"/>, moving
    /// its entry bytes (one contiguous block, as every writer lays them out) to the end of the page.
    /// </summary>
    /// <returns>False when the entries are not one block that fits: the caller uses entry mode.</returns>
    public static bool TryOpen(byte[] committed, byte[] buffer, out int dataStart)
    {
        // The committed page is usually cold (one of hundreds of MB of cached pages). It is read
        // once, front to back in two sequential stretches (header and slots; lowest entry to the
        // end), which the hardware prefetcher streams; the entries are then checked in the copy, in
        // cache, instead of chasing slots through the cold page. The gap below the lowest entry is
        // zeroed, not read.
        int size = committed.Length;
        int count = PageFormat.Count(committed);
        int slotsEnd = PageHeader.SizeOf + (count * PageFormat.SlotSizeBytes);
        dataStart = 0;
        if (slotsEnd > size || buffer.Length != size)
        {
            return false;
        }

        var target = buffer.AsSpan(0, size);
        committed.AsSpan(0, slotsEnd).CopyTo(target);
        int low = size;
        for (int i = 0; i < count; i++)
        {
            low = Math.Min(low, PageFormat.EntryOffset(buffer, i));
        }

        if (low < slotsEnd)
        {
            return false;
        }

        committed.AsSpan(low).CopyTo(target[low..]);
        int high = low;
        long total = 0;
        for (int i = 0; i < count; i++)
        {
            int offset = PageFormat.EntryOffset(buffer, i);
            int length = EntryBytes(buffer, offset);
            if (length < 0 || offset + (long)length > size)
            {
                return false;
            }

            high = Math.Max(high, offset + length);
            total += length;
        }

        if (high - low != total)
        {
            // Gaps or overlaps between entries: not a layout any writer produces; entry mode copes.
            return false;
        }

        int block = high - low;
        dataStart = size - block;
        int shift = dataStart - low;
        if (shift != 0)
        {
            // Built from an entry list (entries right after the slots): move them to the page end.
            target[low..high].CopyTo(target[dataStart..]);
            for (int i = 0; i < count; i++)
            {
                var slot = target[(PageHeader.SizeOf + (i * PageFormat.SlotSizeBytes))..];
                BinaryPrimitives.WriteUInt16LittleEndian(slot, (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(slot) + shift));
            }
        }

        target[slotsEnd..dataStart].Clear();
        return true;
    }

    /// <summary>Makes a page-mode buffer the leaf page <paramref name="pageId"/> written by <paramref name="txid"/>: header, then checksum.</summary>
    public static void Seal(byte[] page, long pageId, long txid)
    {
        ref var header = ref PageHeader.Of(page);
        header.Checksum = 0;
        header.Kind = PageKind.Leaf;
        header.Flags = 0;
        header.PageId = pageId;
        header.Txid = txid;
        header.OverflowPages = 0;
        header.Reserved = 0;
        PageFormat.Seal(page);
    }

    /// <summary>Bytes a new inline entry takes on the page, its slot included.</summary>
    public static int InlineEntrySizeBytes(int keyLength, int valueLength) =>
        PageFormat.SlotSizeBytes + LeafEntryHeader.SizeOf + keyLength + valueLength;

    /// <summary>Free bytes between the slot array and the lowest entry.</summary>
    public static int FreeBytes(byte[] page, int dataStart) =>
        dataStart - PageHeader.SizeOf - (PageFormat.Count(page) * PageFormat.SlotSizeBytes);

    /// <summary>
    /// Inserts an inline entry as entry <paramref name="index"/>: its bytes go right below the
    /// lowest entry, its slot into the slot array (the slots after it move up by one). No entry
    /// bytes already on the page move.
    /// </summary>
    /// <returns>False, changing nothing, when the entry does not fit.</returns>
    public static bool TryInsert(byte[] page, ref int dataStart, int index, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value)
    {
        int count = PageFormat.Count(page);
        if ((uint)index > (uint)count)
        {
            throw new ArgumentOutOfRangeException(nameof(index));
        }

        int entryBytes = LeafEntryHeader.SizeOf + key.Length + value.Length;
        if (PageFormat.SlotSizeBytes + entryBytes > FreeBytes(page, dataStart) || count == ushort.MaxValue)
        {
            return false;
        }

        int offset = dataStart - entryBytes;
        var span = page.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(span[offset..], (ushort)key.Length);
        span[offset + 2] = 0;
        span[offset + 3] = 0;
        BinaryPrimitives.WriteInt32LittleEndian(span[(offset + 4)..], value.Length);
        key.CopyTo(span[(offset + LeafEntryHeader.SizeOf)..]);
        value.CopyTo(span[(offset + LeafEntryHeader.SizeOf + key.Length)..]);

        int slot = PageHeader.SizeOf + (index * PageFormat.SlotSizeBytes);
        int slotsEnd = PageHeader.SizeOf + (count * PageFormat.SlotSizeBytes);
        span[slot..slotsEnd].CopyTo(span[(slot + PageFormat.SlotSizeBytes)..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[slot..], (ushort)offset);
        PageHeader.Of(page).Count = (ushort)(count + 1);
        dataStart = offset;
        return true;
    }

    /// <summary>Bytes of the leaf entry at <paramref name="offset"/> (header, key, value or overflow page id).</summary>
    private static int EntryBytes(byte[] page, int offset)
    {
        if (offset + LeafEntryHeader.SizeOf > page.Length)
        {
            return -1;
        }

        int keyLength = BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(offset));
        bool overflow = (page[offset + 2] & LeafEntryHeader.OverflowFlag) != 0;
        int valueLength = BinaryPrimitives.ReadInt32LittleEndian(page.AsSpan(offset + 4));
        return valueLength < 0 ? -1 : LeafEntryHeader.SizeOf + keyLength + (overflow ? sizeof(long) : valueLength);
    }
}
