using System.Text;

namespace EmbeddedRaft.Mvcc;

/// <summary>Keys and values in messages: printable ASCII as is, anything else as hex.</summary>
internal static class MvccText
{
    public static string Show(ReadOnlySpan<byte> bytes)
    {
        const int MaxShown = 64;
        var shown = bytes.Length > MaxShown ? bytes[..MaxShown] : bytes;
        bool printable = true;
        foreach (byte b in shown)
        {
            printable &= b is >= 0x20 and < 0x7F;
        }

        string text = printable ? "\"" + Encoding.ASCII.GetString(shown) + "\"" : "0x" + Convert.ToHexString(shown);
        return bytes.Length > MaxShown ? text + $"...({bytes.Length} bytes)" : text;
    }
}
