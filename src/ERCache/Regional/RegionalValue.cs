using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using ERCache.Storage;

namespace ERCache.Regional;

/// <summary>
/// How a vector rests in the regional store: a 32-byte header, then the row in the model's regional format.
/// <c>[magic 'E'][layout 2][format][0][dimensions:int32][written:int64 Unix ms][user:int64][fingerprint:XXH3-64]</c>,
/// little-endian; the fingerprint covers model, version, dimensions and format. A value is used only when every field
/// matches what the reader expects and its length is exact; anything else (another user's value, another model's or
/// version's, a truncated or random value) is refused.
/// </summary>
internal static class RegionalValue
{
    public const int HeaderBytes = 32;
    private const byte Magic = (byte)'E';
    private const byte Layout = 2; // 2: the fingerprint covers the model, dimensions and format, not only the version

    /// <summary>The field a model version's values are stored under (model names are case-insensitive).</summary>
    public static string Field(string model, string version) => $"{model.ToLowerInvariant()}:{version}";

    /// <summary>A model version's fingerprint in the header: a value copied under another model's field (two services
    /// sharing a store, a hand-made copy) or written with other dimensions or another format is refused.</summary>
    public static ulong Fingerprint(string model, string version, int dimensions, StorageFormat format) =>
        XxHash3.HashToUInt64(Encoding.UTF8.GetBytes($"{model.ToLowerInvariant()}\n{version}\n{dimensions}\n{format}"));

    /// <summary>The exact length of a value of <paramref name="dimensions"/> in <paramref name="format"/>.</summary>
    public static int Length(StorageFormat format, int dimensions) => HeaderBytes + StorageFormats.RowBytes(format, dimensions);

    public static byte[] Encode(StorageFormat format, ulong fingerprint, long userId, long writtenAtUnixMs, ReadOnlySpan<float> vector)
    {
        var value = new byte[Length(format, vector.Length)];
        var header = value.AsSpan(0, HeaderBytes);
        header[0] = Magic;
        header[1] = Layout;
        header[2] = (byte)format;
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], vector.Length);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], writtenAtUnixMs);
        BinaryPrimitives.WriteInt64LittleEndian(header[16..], userId);
        BinaryPrimitives.WriteUInt64LittleEndian(header[24..], fingerprint);
        StorageFormats.Encode(format, vector, value.AsSpan(HeaderBytes));
        return value;
    }

    /// <summary>Decodes <paramref name="value"/> into <paramref name="destination"/> when it is exactly what the reader
    /// expects; returns false (and leaves <paramref name="destination"/> unspecified) otherwise.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> value, StorageFormat format, ulong fingerprint, long userId, Span<float> destination, out long writtenAtUnixMs)
    {
        writtenAtUnixMs = 0;
        int dimensions = destination.Length;
        if (value.Length != Length(format, dimensions)
            || value[0] != Magic || value[1] != Layout || value[2] != (byte)format || value[3] != 0
            || BinaryPrimitives.ReadInt32LittleEndian(value[4..]) != dimensions
            || BinaryPrimitives.ReadInt64LittleEndian(value[16..]) != userId
            || BinaryPrimitives.ReadUInt64LittleEndian(value[24..]) != fingerprint)
        {
            return false;
        }

        writtenAtUnixMs = BinaryPrimitives.ReadInt64LittleEndian(value[8..]);
        StorageFormats.Decode(format, value[HeaderBytes..], destination);
        return RowKernels.AllFinite(destination); // a forged row with the right header: never serve a NaN or an infinity
    }
}
