using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using ERCache.Models;
using ERCache.Storage;

namespace ERCache.Benchmarks;

/// <summary>
/// The small steps of a direct-tier hit beyond its look-up and copy, each alone and beside an alternative, so that what
/// each costs is measured rather than estimated: the result's count (<see cref="ResultCounts"/>'s interlocked add on a
/// stripe, against a plain add on a <c>[ThreadStatic]</c> cell, the least any per-thread count could cost; after a
/// row's copy as on the hit path, and alone), the TTL clock's reading (against the precise clock), and the key's hash
/// (XXH3 of 8 bytes with the tier's seed, against a seeded multiply-xorshift mix). The row and the buffer are 64-byte
/// aligned native memory, so every process copies the same lines (a <c>float[]</c>'s alignment changes from one process
/// to the next, and with it the copy's cost).
/// </summary>
[MemoryDiagnoser]
public unsafe class HitStepBenchmarks
{
    private const int Steps = 1024;
    private const int RowBytes = PeerCaches.Dimensions * sizeof(float);
    private const ulong Seed = 0x9E3779B97F4A7C15UL;

    [ThreadStatic]
    private static long[]? t_cells; // the alternative: this thread's counts alone (nothing sums the threads' cells)

    private readonly ResultCounts _counts = new();
    private readonly TtlClock _clock = new(TimeProvider.System);
    private readonly long _firstUser = 123_456_789;
    private byte* _row;
    private byte* _destination;

    [GlobalSetup]
    public void Setup()
    {
        _row = (byte*)NativeMemory.AlignedAlloc(RowBytes, 64);
        _destination = (byte*)NativeMemory.AlignedAlloc(RowBytes, 64);
        new Span<float>(_row, PeerCaches.Dimensions).Fill(0.5f);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Steps)]
    public byte Copy()
    {
        for (int i = 0; i < Steps; i++)
        {
            CopyRow();
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public byte CopyThenCount()
    {
        for (int i = 0; i < Steps; i++)
        {
            CopyRow();
            _counts.Count(EmbeddingSource.Direct);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public byte CopyThenThreadStaticCount()
    {
        for (int i = 0; i < Steps; i++)
        {
            CopyRow();
            CountOnThisThread(EmbeddingSource.Direct);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public long Count()
    {
        for (int i = 0; i < Steps; i++)
        {
            _counts.Count(EmbeddingSource.Direct);
        }

        return _counts.Served;
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public long ThreadStaticCount()
    {
        for (int i = 0; i < Steps; i++)
        {
            CountOnThisThread(EmbeddingSource.Direct);
        }

        return t_cells![(int)EmbeddingSource.Direct];
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public long TtlClockReading()
    {
        long sum = 0;
        for (int i = 0; i < Steps; i++)
        {
            sum += _clock.Now;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public long PreciseClockReading()
    {
        long sum = 0;
        for (int i = 0; i < Steps; i++)
        {
            sum += TimeProvider.System.GetTimestamp();
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public ulong KeyHash()
    {
        ulong sum = 0;
        for (int i = 0; i < Steps; i++)
        {
            sum += SlotIndex.Hash(_firstUser + i, Seed);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Steps)]
    public ulong KeyMix()
    {
        ulong sum = 0;
        for (int i = 0; i < Steps; i++)
        {
            sum += Mix((ulong)(_firstUser + i) ^ Seed);
        }

        return sum;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_row);
        NativeMemory.AlignedFree(_destination);
        _row = null;
        _destination = null;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CopyRow() => new ReadOnlySpan<byte>(_row, RowBytes).CopyTo(new Span<byte>(_destination, RowBytes));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CountOnThisThread(EmbeddingSource source) =>
        (t_cells ??= new long[ResultCounts.Sources])[(int)source]++;

    // A bijection of 64 bits (rotations, two multiplications, shifts), as XXH3's own final mix of short keys is.
    private static ulong Mix(ulong h)
    {
        h ^= BitOperations.RotateLeft(h, 49) ^ BitOperations.RotateLeft(h, 24);
        h *= 0x9FB21C651E98DF25UL;
        h ^= (h >> 35) + 8;
        h *= 0x9FB21C651E98DF25UL;
        return h ^ (h >> 28);
    }
}
