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
        where TVisitor : IFormatVisitor<TResult> => format switch
        {
            StorageFormat.Float32 => visitor.Visit<Float32Codec>(),
            StorageFormat.Float16 => visitor.Visit<Float16Codec>(),
            StorageFormat.Int8 => visitor.Visit<Int8RowwiseCodec>(),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown storage format."),
        };

    /// <summary>Bytes one row of <paramref name="dimensions"/> values takes in <paramref name="format"/>.</summary>
    public static int RowBytes(StorageFormat format, int dimensions) =>
        Dispatch<RowBytesOf, int>(format, new RowBytesOf(dimensions));

    private readonly struct RowBytesOf(int dimensions) : IFormatVisitor<int>
    {
        public int Visit<TCodec>()
            where TCodec : struct, IRowCodec => TCodec.RowBytes(dimensions);
    }
}
