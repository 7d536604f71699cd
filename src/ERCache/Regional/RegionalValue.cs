using System.Buffers.Binary;
using System.Globalization;
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

    /// <summary>Why <see cref="TryDecode"/> refused <paramref name="value"/>: called only after a refusal, so the
    /// lookup's path is unchanged. The checks run in <see cref="TryDecode"/>'s order.</summary>
    public static RegionalValueProblem ProblemOf(ReadOnlySpan<byte> value, StorageFormat format, ulong fingerprint, long userId, int dimensions)
    {
        if (value.Length < HeaderBytes || value[0] != Magic || value[1] != Layout || value[3] != 0)
        {
            return RegionalValueProblem.NotAValue;
        }

        if (value[2] != (byte)format || BinaryPrimitives.ReadInt32LittleEndian(value[4..]) != dimensions || value.Length != Length(format, dimensions))
        {
            return RegionalValueProblem.OtherShape;
        }

        if (BinaryPrimitives.ReadInt64LittleEndian(value[16..]) != userId)
        {
            return RegionalValueProblem.OtherUser;
        }

        return BinaryPrimitives.ReadUInt64LittleEndian(value[24..]) != fingerprint ? RegionalValueProblem.OtherModel : RegionalValueProblem.NotFinite;
    }

    /// <summary>What was found, for the log line of a <paramref name="problem"/> that <see cref="ProblemOf"/>
    /// gave.</summary>
    public static string Describe(RegionalValueProblem problem, ReadOnlySpan<byte> value, StorageFormat format, int dimensions)
    {
        var culture = CultureInfo.InvariantCulture;
        switch (problem)
        {
            case RegionalValueProblem.NotAValue when value.Length >= 2 && value[0] == Magic && value[1] != Layout:
                return string.Create(culture, $"a value of layout {value[1]} ({value.Length} bytes), where this library reads layout {Layout}");
            case RegionalValueProblem.NotAValue when value.Length >= 2 && value[0] == Magic:
                return string.Create(culture, $"{value.Length} bytes with a damaged ERCache header");
            case RegionalValueProblem.NotAValue:
                return string.Create(culture, $"{value.Length} bytes without an ERCache header");
            case RegionalValueProblem.OtherShape:
                var written = (StorageFormat)value[2];
                int expected = Length(format, dimensions);
                string length = value.Length > expected ? string.Create(culture, $"more than {expected}") : value.Length.ToString(culture); // read one byte past
                return string.Create(
                    culture,
                    $"{(Enum.IsDefined(written) ? written.ToString() : $"format {value[2]}")} of {BinaryPrimitives.ReadInt32LittleEndian(value[4..])} dimensions in {length} bytes, where this model reads {format} of {dimensions} in {expected}");
            case RegionalValueProblem.OtherUser:
                return string.Create(culture, $"the value of user {BinaryPrimitives.ReadInt64LittleEndian(value[16..])}, under this user's key");
            case RegionalValueProblem.OtherModel:
                return "a value of another model or version under this field (its fingerprint differs)";
            default:
                return "a row holding a value that is not finite";
        }
    }
}
