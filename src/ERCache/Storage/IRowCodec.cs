
namespace ERCache.Storage;

/// <summary>
/// The format seam: how one vector is laid out in a slab row. Implemented by structs with static members
/// so a tier generic over its codec gets a specialised, inlined copy of the conversion code.
/// </summary>
internal interface IRowCodec
{
    /// <summary>The format this codec implements.</summary>
    static abstract StorageFormat Format { get; }

    /// <summary>Bytes one row of <paramref name="dimensions"/> values takes.</summary>
    static abstract int RowBytes(int dimensions);

    /// <summary>Converts a validated (finite) vector into its stored row.</summary>
    static abstract void Encode(ReadOnlySpan<float> source, Span<byte> row);

    /// <summary>Converts a stored row back into floats.</summary>
    static abstract void Decode(ReadOnlySpan<byte> row, Span<float> destination);
}
