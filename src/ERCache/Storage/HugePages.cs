using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace ERCache.Storage;

/// <summary>
/// Large arrays that a hit reads at random (a tier's slabs and its index), backed by transparent huge pages on Linux.
/// </summary>
/// <remarks>
/// <para>Why: a large tier is read at random, so with 4 KB pages nearly every read from memory also misses the
/// processor's TLB and walks the page tables first (in a virtual machine, the guest's and the host's). A 2 MB page
/// covers 512 times the memory per TLB entry. Slabs can use them where per-entry objects cannot: a slab is one
/// contiguous array.</para>
/// <para>How: the array goes on the pinned object heap, so it never moves and the advice stays with its memory. Then
/// the whole 2 MB pages inside it get <c>madvise(MADV_HUGEPAGE)</c>, which makes them eligible under the kernel's
/// default THP mode, <c>madvise</c>. The GC does not touch a large array's fresh memory, so those pages are first
/// touched by the tier's writes, and the kernel can map each one as a huge page then. Where the kernel cannot (THP off,
/// memory too fragmented), it uses 4 KB pages, as without the advice.</para>
/// <para>Elsewhere (Windows, macOS, or a libc without <c>madvise</c>), arrays are allocated as usual.</para>
/// </remarks>
internal static unsafe class HugePages
{
    /// <summary>The size of a transparent huge page on x64 and arm64 Linux with 4 KB base pages.</summary>
    public const int PageBytes = 2 << 20;

    /// <summary>The smallest array that is advised: one this large always holds a whole aligned huge page.</summary>
    public const long MinBytes = 2L * PageBytes;

    private const int MadviseHugePage = 14; // MADV_HUGEPAGE in Linux's uapi mman-common.h

    // madvise from the process's own C library (looked up once; null where there is none to find).
    private static readonly delegate* unmanaged<nint, nuint, int, int> Madvise = FindMadvise();

    /// <summary>Whether this process can advise huge pages at all (Linux with <c>madvise</c> found).</summary>
    public static bool Supported => Madvise != null;

    /// <summary>
    /// A zeroed array of <paramref name="length"/> elements. With <paramref name="advise"/> on a supported system and at
    /// least <see cref="MinBytes"/>, it is pinned and its whole huge pages are advised; <paramref name="advisedBytes"/>
    /// says how many bytes the kernel accepted the advice for (0 otherwise).
    /// </summary>
    public static T[] Allocate<T>(int length, bool advise, out long advisedBytes)
        where T : unmanaged
    {
        advisedBytes = 0;
        long bytes = (long)length * Unsafe.SizeOf<T>();
        if (!advise || bytes < MinBytes || !Supported)
        {
            return new T[length];
        }

        var array = GC.AllocateArray<T>(length, pinned: true);
        var (start, whole) = WholePagesWithin((nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array)), bytes);
        if (whole > 0 && Madvise(start, (nuint)whole, MadviseHugePage) == 0)
        {
            advisedBytes = whole;
        }

        return array;
    }

    /// <summary>Makes the kernel map every 4 KB page of <paramref name="array"/> now, each advised 2 MB range as a huge
    /// page where it can, rather than at the first writes that use it. Each page gets a write access that never changes
    /// a value (an atomic compare-exchange of 0 with 0 on one aligned int), so other threads may write and read the
    /// array meanwhile: a value they wrote stays. <paramref name="array"/> must start 4-byte aligned (managed arrays and
    /// native allocations do).</summary>
    public static void TouchEveryPage(Span<byte> array)
    {
        const int BasePageBytes = 4096;
        ref byte start = ref MemoryMarshal.GetReference(array);
        if (array.Length < sizeof(int))
        {
            return; // nothing a slab or a test touches is this small
        }

        if (((nint)Unsafe.AsPointer(ref start) & (sizeof(int) - 1)) != 0)
        {
            throw new ArgumentException("The array must start 4-byte aligned.", nameof(array));
        }

        for (int i = 0; i <= array.Length - sizeof(int); i += BasePageBytes)
        {
            Interlocked.CompareExchange(ref Unsafe.As<byte, int>(ref Unsafe.Add(ref start, i)), 0, 0);
        }

        // The last page, when the array does not start on a page boundary.
        Interlocked.CompareExchange(ref Unsafe.As<byte, int>(ref Unsafe.Add(ref start, (array.Length - sizeof(int)) & ~(sizeof(int) - 1))), 0, 0);
    }

    /// <summary>The whole huge pages within <paramref name="bytes"/> bytes from <paramref name="address"/>: the first
    /// page boundary at or after it, and the bytes from there to the last boundary before its end (0 when none fits).</summary>
    internal static (nint Start, long Length) WholePagesWithin(nint address, long bytes)
    {
        const long Mask = PageBytes - 1;
        long start = ((long)address + Mask) & ~Mask;
        long end = ((long)address + bytes) & ~Mask;
        return end > start ? ((nint)start, end - start) : ((nint)start, 0);
    }

    private static delegate* unmanaged<nint, nuint, int, int> FindMadvise() =>
        OperatingSystem.IsLinux() && NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), "madvise", out var address)
            ? (delegate* unmanaged<nint, nuint, int, int>)address
            : null;
}
