using BenchmarkDotNet.Attributes;
using ERCache.Storage;

namespace ERCache.Benchmarks;

/// <summary>Each storage-format kernel against its scalar twin, on one 256-dimension row.</summary>
[MemoryDiagnoser]
public class KernelBenchmarks
{
    private const int Dimensions = 256;
    private readonly float[] _row = new float[Dimensions];
    private readonly float[] _decoded = new float[Dimensions];
    private readonly Half[] _half = new Half[Dimensions];
    private readonly byte[] _int8 = new byte[RowKernels.Int8RowBytes(Dimensions)];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        for (int i = 0; i < Dimensions; i++)
        {
            _row[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        RowKernels.ToHalf(_row, _half);
        RowKernels.QuantizeInt8(_row, _int8);
    }

    [Benchmark(Baseline = true)]
    [BenchmarkCategory("ToHalf")]
    public void ToHalfScalar() => RowKernels.ToHalfScalar(_row, _half);

    [Benchmark]
    [BenchmarkCategory("ToHalf")]
    public void ToHalfSimd() => RowKernels.ToHalf(_row, _half);

    [Benchmark]
    [BenchmarkCategory("FromHalf")]
    public void FromHalfScalar() => RowKernels.FromHalfScalar(_half, _decoded);

    [Benchmark]
    [BenchmarkCategory("FromHalf")]
    public void FromHalfSimd() => RowKernels.FromHalf(_half, _decoded);

    [Benchmark]
    [BenchmarkCategory("QuantizeInt8")]
    public void QuantizeInt8Scalar() => RowKernels.QuantizeInt8Scalar(_row, _int8);

    [Benchmark]
    [BenchmarkCategory("QuantizeInt8")]
    public void QuantizeInt8Simd() => RowKernels.QuantizeInt8(_row, _int8);

    [Benchmark]
    [BenchmarkCategory("DequantizeInt8")]
    public void DequantizeInt8Scalar() => RowKernels.DequantizeInt8Scalar(_int8, _decoded);

    [Benchmark]
    [BenchmarkCategory("DequantizeInt8")]
    public void DequantizeInt8Simd() => RowKernels.DequantizeInt8(_int8, _decoded);
}
