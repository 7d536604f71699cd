using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using ERCache.Storage;

namespace ERCache.Regional;

/// <summary>
/// How a vector rests in the regional store: a 32-byte header, then the row in the model's regional format.
/// <c>[magic 'E'][layout 1][format][0][dimensions:int32][written:int64 Unix ms][user:int64][version:XXH3-64]</c>,
/// little-endian. A value is used only when every field matches what the reader expects and its length is exact;
/// anything else (another user's value, another version, a truncated or random value) is refused.
/// </summary>
internal static class RegionalValue
{
    public const int HeaderBytes = 32;
    private const byte Magic = (byte)'E';
    private const byte Layout = 1;

    /// <summary>The field a model version's values are stored under (model names are case-insensitive).</summary>
    public static string Field(string model, string version) => $"{model.ToLowerInvariant()}:{version}";

    /// <summary>A version's fingerprint in the header.</summary>
    public static ulong VersionHash(string version) => XxHash3.HashToUInt64(Encoding.UTF8.GetBytes(version));

    public static byte[] Encode(StorageFormat format, ulong versionHash, long userId, long writtenAtUnixMs, ReadOnlySpan<float> vector)
    {
        var value = new byte[HeaderBytes + StorageFormats.RowBytes(format, vector.Length)];
        var header = value.AsSpan(0, HeaderBytes);
        header[0] = Magic;
        header[1] = Layout;
        header[2] = (byte)format;
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], vector.Length);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], writtenAtUnixMs);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], userId);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], versionHash);
        StorageFormats.Encode(format, vector, value.AsSpan(HeaderBytes));
        return value;
    }

    /// <summary>Decodes <paramref name="value"/> into <paramref name="destination"/> when it is exactly what the reader
    /// expects; returns false (and leaves <paramref name="destination"/> unspecified) otherwise.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> value, StorageFormat format, ulong versionHash, long userId, Span<float> destination, out long writtenAtUnixMs)
    {
        writtenAtUnixMs = 0;
        int dimensions = destination.Length;
        if (value.Length != HeaderBytes + StorageFormats.RowBytes(format, dimensions)
            || value[0] != Magic || value[1] != Layout || value[2] != (byte)format || value[3] != 0
            || BinaryPrimitives.ReadInt32LittleEndian(value[4..]) != dimensions
            || BinaryPrimitives.ReadInt64LittleEndian(value[16..]) != userId
            || BinaryPrimitives.ReadUInt64LittleEndian(value[24..]) != versionHash)
        {
            return false;
        }

        writtenAtUnixMs = BinaryPrimitives.ReadInt64LittleEndian(value[8..]);
        StorageFormats.Decode(format, value[HeaderBytes..], destination);
        return RowKernels.AllFinite(destination); // a forged row with the right header: never serve a NaN or an infinity
    }
}
