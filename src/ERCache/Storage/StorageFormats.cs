namespace ERCache.Storage;

/// <summary>Something done once the codec of a <see cref="StorageFormat"/> is known, as a generic method the JIT
/// specialises per codec.</summary>
internal interface IFormatVisitor<out TResult>
{
    TResult Visit<TCodec>()
        where TCodec : struct, IRowCodec;
}

/// <summary>The one mapping from <see cref="StorageFormat"/> to its codec; the tier factory and the sizing both go
/// through it.</summary>
internal static class StorageFormats
{
    public static TResult Dispatch<TVisitor, TResult>(StorageFormat format, TVisitor visitor)
        where TVisitor : IFormatVisitor<TResult>, allows ref struct => format switch
        {
            StorageFormat.Float32 => visitor.Visit<Float32Codec>(),
            StorageFormat.Float16 => visitor.Visit<Float16Codec>(),
            StorageFormat.Int8 => visitor.Visit<Int8RowwiseCodec>(),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown storage format."),
        };

    /// <summary>Bytes one row of <paramref name="dimensions"/> values takes in <paramref name="format"/>.</summary>
    public static int RowBytes(StorageFormat format, int dimensions) =>
        Dispatch<RowBytesOf, int>(format, new RowBytesOf(dimensions));

    /// <summary>Encodes a validated vector into a row of <paramref name="format"/>.</summary>
    public static void Encode(StorageFormat format, ReadOnlySpan<float> source, Span<byte> row) =>
        Dispatch<EncodeRow, bool>(format, new EncodeRow(source, row));

    /// <summary>Decodes a row of <paramref name="format"/> into floats.</summary>
    public static void Decode(StorageFormat format, ReadOnlySpan<byte> row, Span<float> destination) =>
        Dispatch<DecodeRow, bool>(format, new DecodeRow(row, destination));

    private readonly ref struct EncodeRow(ReadOnlySpan<float> source, Span<byte> row) : IFormatVisitor<bool>
    {
        private readonly ReadOnlySpan<float> _source = source;
        private readonly Span<byte> _row = row;

        public bool Visit<TCodec>()
            where TCodec : struct, IRowCodec
        {
            TCodec.Encode(_source, _row);
            return true;
        }
    }

    private readonly ref struct DecodeRow(ReadOnlySpan<byte> row, Span<float> destination) : IFormatVisitor<bool>
    {
        private readonly ReadOnlySpan<byte> _row = row;
        private readonly Span<float> _destination = destination;

        public bool Visit<TCodec>()
            where TCodec : struct, IRowCodec
        {
            TCodec.Decode(_row, _destination);
            return true;
        }
    }

    private readonly struct RowBytesOf(int dimensions) : IFormatVisitor<int>
    {
        public int Visit<TCodec>()
            where TCodec : struct, IRowCodec => TCodec.RowBytes(dimensions);
    }
}
