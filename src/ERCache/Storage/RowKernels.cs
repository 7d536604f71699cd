using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ERCache.Storage;

/// <summary>
/// The conversions behind the storage formats, each as a vectorised kernel and its scalar twin. The twins do the
/// same IEEE operations in the same order (fused multiply-add, round half to even), so the two give bit-identical
/// results; the tests hold them to that, and the benchmarks measure the difference.
/// </summary>
internal static class RowKernels
{
    /// <summary>Bytes of an Int8 row's header: a float scale, then a float bias.</summary>
    public const int Int8HeaderBytes = 8;

    /// <summary>The largest finite IEEE half, 65504: Float16 rows saturate to ±this.</summary>
    public const float MaxHalf = 65504f;

    /// <summary>Whether every value of <paramref name="row"/> is finite (no NaN, no infinity): the check a vector passes
    /// before it is cached or served.</summary>
    internal static bool AllFinite(ReadOnlySpan<float> row) => !float.IsNaN(TensorPrimitives.Sum(row) * 0f) || CheckEach(row);

    // x * 0 is 0 for every finite x and NaN for NaN and ±infinity, so one vectorised pass finds both; a sum that
    // overflows to infinity from finite values is checked value by value.
    private static bool CheckEach(ReadOnlySpan<float> row) => IndexOfNonFinite(row) < 0;

    /// <summary>The index of the first NaN or infinity in <paramref name="row"/>, or -1 (for messages that name it).</summary>
    internal static int IndexOfNonFinite(ReadOnlySpan<float> row)
    {
        for (int i = 0; i < row.Length; i++)
        {
            if (!float.IsFinite(row[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Bytes of an Int8 row of <paramref name="dimensions"/> values.</summary>
    public static int Int8RowBytes(int dimensions) => Int8HeaderBytes + dimensions;

    /// <summary>
    /// Quantizes <paramref name="source"/> into an Int8 row: <c>scale = (max - min) / 255</c>, <c>bias = min</c>,
    /// <c>q = round((x - min) / scale)</c> in 0..255. Decoding gives <c>q * scale + bias</c>, within half a step,
    /// <c>(max - min) / 255 / 2</c>, of the input (plus float rounding). A row whose range is below about 7.5e-37
    /// (where <c>255 / range</c> would overflow) is stored as its minimum, so every value is within that range.
    /// </summary>
    /// <param name="source">Finite values.</param>
    /// <param name="row"><see cref="Int8RowBytes"/> bytes.</param>
    public static void QuantizeInt8(ReadOnlySpan<float> source, Span<byte> row) => QuantizeInt8(source, row, vectorized: true);

    /// <summary>The scalar twin of <see cref="QuantizeInt8(ReadOnlySpan{float}, Span{byte})"/>.</summary>
    public static void QuantizeInt8Scalar(ReadOnlySpan<float> source, Span<byte> row) => QuantizeInt8(source, row, vectorized: false);

    /// <summary>Decodes an Int8 row into floats: <c>x = q * scale + bias</c> (one fused multiply-add).</summary>
    public static void DequantizeInt8(ReadOnlySpan<byte> row, Span<float> destination)
    {
        var q = SplitInt8(row, destination.Length, out float scale, out float bias);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(scale);
            var b = Vector256.Create(bias);
            ref byte src = ref MemoryMarshal.GetReference(q);
            ref float dst = ref MemoryMarshal.GetReference(destination);
            for (; i <= q.Length - 32; i += 32)
            {
                var bytes = Vector256.LoadUnsafe(ref src, (nuint)i);
                var (lo16, hi16) = Vector256.Widen(bytes);
                var (a, c) = Vector256.Widen(lo16);
                var (d, e) = Vector256.Widen(hi16);
                Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(a.AsInt32()), s, b).StoreUnsafe(ref dst, (nuint)i);
                Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(c.AsInt32()), s, b).StoreUnsafe(ref dst, (nuint)(i + 8));
                Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(d.AsInt32()), s, b).StoreUnsafe(ref dst, (nuint)(i + 16));
                Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(e.AsInt32()), s, b).StoreUnsafe(ref dst, (nuint)(i + 24));
            }
        }

        for (; i < q.Length; i++)
        {
            destination[i] = MathF.FusedMultiplyAdd(q[i], scale, bias);
        }
    }

    /// <summary>The scalar twin of <see cref="DequantizeInt8"/>.</summary>
    public static void DequantizeInt8Scalar(ReadOnlySpan<byte> row, Span<float> destination)
    {
        var q = SplitInt8(row, destination.Length, out float scale, out float bias);
        for (int i = 0; i < q.Length; i++)
        {
            destination[i] = MathF.FusedMultiplyAdd(q[i], scale, bias);
        }
    }

    /// <summary>Converts floats to IEEE halves (round to nearest even), saturating at ±<see cref="MaxHalf"/> so a
    /// large finite value never becomes an infinity. Subnormal halves are kept.</summary>
    public static void ToHalf(ReadOnlySpan<float> source, Span<Half> destination)
    {
        CheckLength(source.Length, destination.Length);
        Unsafe.SkipInit(out ClampedChunk chunk); // not stackalloc (see ClampedChunk); each value read is written first
        Span<float> clamped = chunk;
        for (int start = 0; start < source.Length; start += clamped.Length)
        {
            int n = Math.Min(clamped.Length, source.Length - start);
            TensorPrimitives.Clamp(source.Slice(start, n), -MaxHalf, MaxHalf, clamped[..n]);
            TensorPrimitives.ConvertToHalf(clamped[..n], destination.Slice(start, n));
        }
    }

    /// <summary>The scalar twin of <see cref="ToHalf"/>.</summary>
    public static void ToHalfScalar(ReadOnlySpan<float> source, Span<Half> destination)
    {
        CheckLength(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = (Half)Math.Clamp(source[i], -MaxHalf, MaxHalf);
        }
    }

    /// <summary>Converts IEEE halves to floats (exact).</summary>
    public static void FromHalf(ReadOnlySpan<Half> source, Span<float> destination)
    {
        CheckLength(source.Length, destination.Length);
        TensorPrimitives.ConvertToSingle(source, destination);
    }

    /// <summary>The scalar twin of <see cref="FromHalf"/>.</summary>
    public static void FromHalfScalar(ReadOnlySpan<Half> source, Span<float> destination)
    {
        CheckLength(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = (float)source[i];
        }
    }

    private static void QuantizeInt8(ReadOnlySpan<float> source, Span<byte> row, bool vectorized)
    {
        if (row.Length != Int8RowBytes(source.Length))
        {
            throw new ArgumentException($"An Int8 row of {source.Length} values needs {Int8RowBytes(source.Length)} bytes (got {row.Length}).", nameof(row));
        }

        if (source.IsEmpty)
        {
            return;
        }

        float min = vectorized ? TensorPrimitives.Min(source) : ScalarMin(source);
        float max = vectorized ? TensorPrimitives.Max(source) : ScalarMax(source);
        double range = (double)max - min; // in double: max - min can overflow float for huge magnitudes
        float scale = (float)(range / 255.0);
        float inverse = (float)(255.0 / range);
        float bias = min;
        if (range == 0 || !float.IsFinite(inverse) || scale == 0)
        {
            // A constant row, or one so narrow (range below 255 / float.MaxValue, about 7.5e-37) that 1 / step
            // overflows: stored as its midpoint, every q 0, so each value is within range / 2.
            scale = 0;
            inverse = 0;
            bias = (float)(min + (range / 2));
        }

        float offset = -min * inverse; // q = x * inverse + offset = (x - min) * inverse, without overflowing x - min
        MemoryMarshal.Write(row, in scale);
        MemoryMarshal.Write(row[4..], in bias);
        var q = row[Int8HeaderBytes..];
        int i = 0;
        if (vectorized && Vector256.IsHardwareAccelerated)
        {
            var inv = Vector256.Create(inverse);
            var off = Vector256.Create(offset);
            ref float src = ref MemoryMarshal.GetReference(source);
            ref byte dst = ref MemoryMarshal.GetReference(q);
            for (; i <= source.Length - 32; i += 32)
            {
                var a = QuantizeLanes(Vector256.LoadUnsafe(ref src, (nuint)i), inv, off);
                var b = QuantizeLanes(Vector256.LoadUnsafe(ref src, (nuint)(i + 8)), inv, off);
                var c = QuantizeLanes(Vector256.LoadUnsafe(ref src, (nuint)(i + 16)), inv, off);
                var d = QuantizeLanes(Vector256.LoadUnsafe(ref src, (nuint)(i + 24)), inv, off);
                Vector256.Narrow(Vector256.Narrow(a, b), Vector256.Narrow(c, d)).StoreUnsafe(ref dst, (nuint)i);
            }
        }

        for (; i < source.Length; i++)
        {
            float v = MathF.Round(MathF.FusedMultiplyAdd(source[i], inverse, offset));
            q[i] = (byte)Math.Clamp(v, 0f, 255f);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> QuantizeLanes(Vector256<float> x, Vector256<float> inverse, Vector256<float> offset)
    {
        var v = Vector256.Round(Vector256.FusedMultiplyAdd(x, inverse, offset)); // round half to even, like MathF.Round
        v = Vector256.Min(Vector256.Max(v, Vector256<float>.Zero), Vector256.Create(255f));
        return Vector256.ConvertToInt32(v).AsUInt32();
    }

    private static ReadOnlySpan<byte> SplitInt8(ReadOnlySpan<byte> row, int dimensions, out float scale, out float bias)
    {
        if (row.Length != Int8RowBytes(dimensions))
        {
            throw new ArgumentException($"An Int8 row of {dimensions} values has {Int8RowBytes(dimensions)} bytes (got {row.Length}).", nameof(row));
        }

        scale = MemoryMarshal.Read<float>(row);
        bias = MemoryMarshal.Read<float>(row[4..]);
        return row[Int8HeaderBytes..];
    }

    private static float ScalarMin(ReadOnlySpan<float> values)
    {
        float m = values[0];
        foreach (float v in values)
        {
            m = Math.Min(m, v);
        }

        return m;
    }

    private static float ScalarMax(ReadOnlySpan<float> values)
    {
        float m = values[0];
        foreach (float v in values)
        {
            m = Math.Max(m, v);
        }

        return m;
    }

    private static void CheckLength(int source, int destination)
    {
        if (source != destination)
        {
            throw new ArgumentException($"The destination has {destination} elements but the source has {source}.", nameof(destination));
        }
    }

    /// <summary>
    /// <see cref="ToHalf"/>'s scratch: a chunk of clamped floats. A fixed-size struct instead of <c>stackalloc</c>: the
    /// runtime compiles a method with a loop and a <c>stackalloc</c> once, optimized without tiering's profile data (see
    /// Tiers/PrefetchBuffer), and the tests keep the request path out of that tier (JitTierTests).
    /// </summary>
    [InlineArray(256)]
    private struct ClampedChunk
    {
        private float _element;
    }
}
