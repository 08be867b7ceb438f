namespace EmbeddedRaft.Storage.Wal;

/// <summary>What <see cref="SegmentScanner.Next"/> found at the scanner's offset.</summary>
internal enum ScanStatus
{
    /// <summary>A valid frame whose chained crc matches; the scanner moved past it.</summary>
    Frame,

    /// <summary>A zero length word, or no room for one before the limit: no frame starts here.</summary>
    End,

    /// <summary>A frame that fails a check; the scanner did not move. See <see cref="SegmentScanner.BadReason"/>.</summary>
    Bad,
}
