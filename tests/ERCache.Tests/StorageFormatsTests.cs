using ERCache.Storage;

namespace ERCache.Tests;

/// <summary>The one format dispatch: every format reaches the codec that says it implements it.</summary>
public sealed class StorageFormatsTests
{
    [Theory]
    [InlineData(StorageFormat.Float32, 256, 1024)]
    [InlineData(StorageFormat.Float16, 256, 512)]
    [InlineData(StorageFormat.Int8, 256, 264)]
    public void Each_format_dispatches_to_its_own_codec(StorageFormat format, int dimensions, int rowBytes)
    {
        Assert.Equal(format, StorageFormats.Dispatch<FormatOf, StorageFormat>(format, default));
        Assert.Equal(rowBytes, StorageFormats.RowBytes(format, dimensions));
    }

    [Fact]
    public void An_undefined_format_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => StorageFormats.RowBytes((StorageFormat)9, 4));

    private readonly struct FormatOf : IFormatVisitor<StorageFormat>
    {
        public StorageFormat Visit<TCodec>()
            where TCodec : struct, IRowCodec => TCodec.Format;
    }
}
