using System.Runtime.InteropServices;

namespace ERCache.Storage;

/// <summary>Rows of 32-bit floats, stored exactly: encode and decode are plain (vectorised) copies.</summary>
internal readonly struct Float32Codec : IRowCodec
{
    public static StorageFormat Format => StorageFormat.Float32;

    public static int RowBytes(int dimensions) => dimensions * sizeof(float);

    public static void Encode(ReadOnlySpan<float> source, Span<byte> row) =>
        source.CopyTo(MemoryMarshal.Cast<byte, float>(row));

    public static void Decode(ReadOnlySpan<byte> row, Span<float> destination) =>
        MemoryMarshal.Cast<byte, float>(row).CopyTo(destination);
}
