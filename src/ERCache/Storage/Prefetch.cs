using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace ERCache.Storage;

/// <summary>
/// Software prefetch: asks the processor to start loading a cache line that will be read soon, without waiting for it.
/// A batch that knows all its keys can have many loads in flight at once (memory-level parallelism) instead of paying
/// each miss in turn. Only a hint: an address the GC has since moved, or any address at all, is harmless.
/// </summary>
internal static class Prefetch
{
    /// <summary>Bytes in one cache line on the processors .NET runs on.</summary>
    public const int LineBytes = 64;

    /// <summary>A line and the one the processor may fetch with it: how far apart fields written by one thread and read
    /// by others are kept, so that no write takes the readers' line.</summary>
    public const int PairBytes = 2 * LineBytes;

    /// <summary>Starts loading the line holding <paramref name="location"/> into every cache level (x86; a no-op
    /// elsewhere, where .NET exposes no prefetch instruction).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Line<T>(ref T location)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch0(Unsafe.AsPointer(ref location));
        }
    }

    /// <summary>Starts loading the line holding <paramref name="location"/> into the second-level cache and beyond, not
    /// the first (x86; a no-op elsewhere). For many lines at once, such as whole rows: a first-level prefetch holds one of
    /// the core's few first-level miss buffers until its line arrives, so a few rows' worth of them queue behind each
    /// other, while the second level tracks many more misses at once and is a few cycles from the core.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void LineToSecondLevel<T>(ref T location)
    {
        if (Sse.IsSupported)
        {
            Sse.Prefetch1(Unsafe.AsPointer(ref location));
        }
    }
}
