using System.Runtime.InteropServices;

namespace ERCache.Storage;

/// <summary>Rows of IEEE halves (2 bytes a value): relative error at most 2^-11 in the normal range, values beyond
/// ±65504 saturate, values below 6.1e-5 in magnitude lose precision (subnormal halves) and below 3e-8 become 0.</summary>
internal readonly struct Float16Codec : IRowCodec
{
    public static StorageFormat Format => StorageFormat.Float16;

    public static int RowBytes(int dimensions) => dimensions * 2;

    public static void Encode(ReadOnlySpan<float> source, Span<byte> row) =>
        RowKernels.ToHalf(source, MemoryMarshal.Cast<byte, Half>(row));

    public static void Decode(ReadOnlySpan<byte> row, Span<float> destination) =>
        RowKernels.FromHalf(MemoryMarshal.Cast<byte, Half>(row), destination);
}

/// <summary>Rows of one byte a value after a float scale and bias (FBGEMM's row-wise int8): each value within half
/// a quantization step, <c>(max - min) / 255 / 2</c>, of the original.</summary>
internal readonly struct Int8RowwiseCodec : IRowCodec
{
    public static StorageFormat Format => StorageFormat.Int8;

    public static int RowBytes(int dimensions) => RowKernels.Int8RowBytes(dimensions);

    public static void Encode(ReadOnlySpan<float> source, Span<byte> row) => RowKernels.QuantizeInt8(source, row);

    public static void Decode(ReadOnlySpan<byte> row, Span<float> destination) => RowKernels.DequantizeInt8(row, destination);
}
