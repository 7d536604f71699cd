using System.Runtime.InteropServices;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>Every vectorised kernel against its scalar twin, and the formats' error bounds.</summary>
public sealed class RowKernelsTests
{
    public static TheoryData<string, int> Rows()
    {
        var data = new TheoryData<string, int>();
        foreach (var kind in new[] { "random", "zeros", "constant", "huge", "tiny", "subnormal", "mixed", "wide" })
        {
            foreach (int dims in new[] { 1, 7, 8, 31, 32, 33, 64, 255, 256, 1000 })
            {
                data.Add(kind, dims);
            }
        }

        return data;
    }

    private static float[] Row(string kind, int dims, int seed = 1)
    {
        var rng = new Random(seed * 7919 + dims);
        return Enumerable.Range(0, dims).Select(i => kind switch
        {
            "random" => (float)((rng.NextDouble() * 2) - 1),
            "zeros" => 0f,
            "constant" => 3.25f,
            "huge" => (float)((rng.NextDouble() * 2) - 1) * 3e38f,
            "tiny" => (float)((rng.NextDouble() * 2) - 1) * 1e-30f,
            "subnormal" => (float)(rng.NextDouble() * 1e-39),
            "mixed" => i % 3 == 0 ? 1e20f : (i % 3 == 1 ? -1e-20f : 0.5f),
            "wide" => (float)(((rng.NextDouble() * 2) - 1) * 1e5),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        }).ToArray();
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Int8_quantize_and_dequantize_match_their_scalar_twins_bit_for_bit(string kind, int dims)
    {
        var x = Row(kind, dims);
        var simd = new byte[RowKernels.Int8RowBytes(dims)];
        var scalar = new byte[simd.Length];

        RowKernels.QuantizeInt8(x, simd);
        RowKernels.QuantizeInt8Scalar(x, scalar);
        Assert.Equal(scalar, simd);

        var a = new float[dims];
        var b = new float[dims];
        RowKernels.DequantizeInt8(simd, a);
        RowKernels.DequantizeInt8Scalar(simd, b);
        Assert.Equal(b.Select(BitConverter.SingleToInt32Bits), a.Select(BitConverter.SingleToInt32Bits));
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Int8_error_is_at_most_half_a_quantization_step(string kind, int dims)
    {
        var x = Row(kind, dims);
        var row = new byte[RowKernels.Int8RowBytes(dims)];
        var y = new float[dims];
        RowKernels.QuantizeInt8(x, row);
        RowKernels.DequantizeInt8(row, y);

        double min = x.Min(), max = x.Max();
        double range = max - min;
        double halfStep = range / 255 / 2;
        bool degenerate = range < 7.5e-37; // stored as its midpoint: error at most half the range
        for (int i = 0; i < dims; i++)
        {
            double error = Math.Abs((double)x[i] - y[i]);
            double bound = degenerate ? (range / 2) + (2 * Ulp(x[i])) : (halfStep * 1.001) + (2 * Ulp(x[i]));
            Assert.True(error <= bound, $"{kind}[{i}] = {x[i]:R} decoded {y[i]:R}: error {error:R} > {bound:R}");
            Assert.True(float.IsFinite(y[i]));
        }

        // One float rounding of the decoded value.
        static double Ulp(float v) => (Math.Abs(v) * 1.2e-7) + float.Epsilon;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Half_conversions_match_their_scalar_twins_bit_for_bit(string kind, int dims)
    {
        var x = Row(kind, dims);
        var simd = new Half[dims];
        var scalar = new Half[dims];
        RowKernels.ToHalf(x, simd);
        RowKernels.ToHalfScalar(x, scalar);
        Assert.Equal(scalar.Select(BitConverter.HalfToInt16Bits), simd.Select(BitConverter.HalfToInt16Bits));

        var a = new float[dims];
        var b = new float[dims];
        RowKernels.FromHalf(simd, a);
        RowKernels.FromHalfScalar(simd, b);
        Assert.Equal(b.Select(BitConverter.SingleToInt32Bits), a.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Float16_saturates_instead_of_overflowing_and_keeps_subnormals()
    {
        float[] x = [1e6f, -1e6f, 65504f, 65520f, 6e-5f, 1e-6f, 1e-9f, float.MaxValue];
        var h = new Half[x.Length];
        var y = new float[x.Length];
        RowKernels.ToHalf(x, h);
        RowKernels.FromHalf(h, y);

        Assert.Equal([65504f, -65504f, 65504f, 65504f], y[..4]);
        Assert.Equal((float)(Half)6e-5f, y[4]);
        Assert.True(Half.IsSubnormal(h[5]) && y[5] > 0); // 1e-6 is a subnormal half, not zero
        Assert.Equal(0f, y[6]);                          // below the smallest subnormal: rounds to zero
        Assert.Equal(65504f, y[7]);
        Assert.All(y, v => Assert.True(float.IsFinite(v)));
        Assert.True(Half.IsPositiveInfinity((Half)1e6f)); // what the raw conversion would have stored
    }

    [Fact]
    public void Float16_relative_error_is_at_most_2_to_the_minus_11_in_the_normal_range()
    {
        var x = Row("wide", 4096, seed: 5).Where(v => Math.Abs(v) is >= 6.2e-5f and <= RowKernels.MaxHalf).ToArray();
        var h = new Half[x.Length];
        var y = new float[x.Length];
        RowKernels.ToHalf(x, h);
        RowKernels.FromHalf(h, y);

        for (int i = 0; i < x.Length; i++)
        {
            Assert.True(Math.Abs(x[i] - y[i]) <= Math.Abs(x[i]) * Math.Pow(2, -11), $"{x[i]:R} -> {y[i]:R}");
        }
    }

    [Fact]
    public void An_Int8_row_too_narrow_to_step_is_stored_as_its_midpoint()
    {
        // range 1e-37: 1 / step would overflow a float, so the row is constant; its midpoint keeps every value within
        // half the range (stored as its minimum, the widest value was off by the whole range).
        float[] x = [0f, 1e-37f, 5e-38f, 2.5e-38f];
        var row = new byte[RowKernels.Int8RowBytes(x.Length)];
        var y = new float[x.Length];
        RowKernels.QuantizeInt8(x, row);
        RowKernels.DequantizeInt8(row, y);

        for (int i = 0; i < x.Length; i++)
        {
            Assert.True(Math.Abs((double)x[i] - y[i]) <= (1e-37 / 2) * 1.001, $"x[{i}] = {x[i]:R} decoded {y[i]:R}");
        }
    }

    [Fact]
    public void Int8_row_layout_is_scale_then_bias_then_one_byte_a_value()
    {
        float[] x = [0f, 255f, 127.4f, 127.6f];
        var row = new byte[RowKernels.Int8RowBytes(4)];
        RowKernels.QuantizeInt8(x, row);

        Assert.Equal(12, row.Length);
        Assert.Equal(1f, MemoryMarshal.Read<float>(row));
        Assert.Equal(0f, MemoryMarshal.Read<float>(row.AsSpan(4)));
        Assert.Equal([0, 255, 127, 128], row[8..]);
    }

    [Fact]
    public void Wrong_buffer_lengths_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => RowKernels.QuantizeInt8(new float[4], new byte[11]));
        Assert.Throws<ArgumentException>(() => RowKernels.DequantizeInt8(new byte[12], new float[5]));
        Assert.Throws<ArgumentException>(() => RowKernels.ToHalf(new float[4], new Half[3]));
    }

    [Theory]
    [InlineData("Float16", 1.0 / 1024)]
    [InlineData("Int8", 1.0 / 255)]
    public async Task A_cache_with_a_reduced_precision_format_serves_vectors_within_its_bound(string format, double tolerance)
    {
        using var f = new CacheFixture(m =>
        {
            m.Dimensions = 64;
            m.Direct.Format = Enum.Parse<StorageFormat>(format);
            m.Failover.Format = Enum.Parse<StorageFormat>(format);
        }, dimensions: 64);
        f.Tower.PerUser = (user, batch, i, _) =>
        {
            var row = batch.GetRow(i).Span;
            for (int j = 0; j < row.Length; j++)
            {
                row[j] = MathF.Sin(user + j); // in [-1, 1]: half a step is 1/255, Float16 error below 2^-11
            }

            return ValueTask.CompletedTask;
        };

        var (fresh, exact) = await f.GetAsync(3);
        var (direct, stored) = await f.GetAsync(3);

        Assert.Equal(EmbeddingSource.Fresh, fresh.Source);
        Assert.Equal(EmbeddingSource.Direct, direct.Source);
        for (int j = 0; j < 64; j++)
        {
            Assert.Equal(MathF.Sin(3 + j), exact[j]); // a fresh vector is returned exactly, not through the format
            Assert.InRange(stored[j] - exact[j], -tolerance, tolerance);
        }
    }
}
