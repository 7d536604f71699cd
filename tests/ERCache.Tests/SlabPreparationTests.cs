using System.Runtime.InteropServices;
using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;

namespace ERCache.Tests;

/// <summary>A tier on huge pages prepares its next slab (allocated, every page faulted in) off the write path, from the
/// moment half of the current slab is filled, so that no write stalls on a huge page's first touch under the tier's
/// lock; and a write that arrives before the preparation is done allocates the slab itself, as before.</summary>
public sealed class SlabPreparationTests
{
    private const int Dimensions = 256, Capacity = 40_000, SlabSlots = 16_384; // 41.8 MB of 1 KB rows: slabs of 16,384

    [Fact]
    public void The_next_slab_is_prepared_from_half_of_the_current_one_and_taken_with_every_page_in_memory()
    {
        if (!HugePages.Supported)
        {
            return; // no huge pages, no preparation (A_tier_without_huge_pages_prepares_nothing)
        }

        using var metrics = new ERCacheMetrics(null);
        var scheduler = new ManualTaskScheduler();
        var tier = NewTier(metrics, hugePages: true, scheduler);

        TierHelper.WriteUsers(tier, 0, SlabSlots / 2);
        Assert.Null(tier.NextSlab);
        Assert.Equal(0, scheduler.Queued);

        TierHelper.WriteUsers(tier, SlabSlots / 2, SlabSlots / 2 + 1); // the slab's middle slot: the next one's preparation starts
        var preparation = tier.NextSlab;
        Assert.NotNull(preparation);
        Assert.False(preparation.IsCompleted);
        long allocatedBefore = tier.GetStatistics().AllocatedBytes;

        Assert.Equal(1, scheduler.RunAll());
        Assert.True(preparation.IsCompletedSuccessfully);
        var prepared = tier.ReadySlab!;
        Assert.Equal(PagesSpanned(prepared), PresentPages(prepared)); // every page faulted in before any write uses it
        Assert.InRange(tier.GetStatistics().AllocatedBytes - allocatedBefore, (long)SlabSlots * 1024, (long)SlabSlots * 1100);

        TierHelper.WriteUsers(tier, SlabSlots / 2 + 1, SlabSlots);
        Assert.Null(tier.SlabOf(1));
        TierHelper.WriteUsers(tier, SlabSlots, SlabSlots + 1); // the first slot of the second slab

        Assert.Same(prepared, tier.SlabOf(1));
        Assert.Null(tier.NextSlab); // taken
        Assert.InRange(tier.GetStatistics().HugePageBytes, 14L * HugePages.PageBytes, 16L * HugePages.PageBytes); // two slabs of 17.1 MB: 7 or 8 whole pages each

        TierHelper.WriteUsers(tier, SlabSlots + 1, 36_000);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 36_000);
    }

    [Fact]
    public void A_slab_not_prepared_in_time_is_allocated_by_the_write_and_the_late_one_is_dropped()
    {
        if (!HugePages.Supported)
        {
            return;
        }

        using var metrics = new ERCacheMetrics(null);
        var scheduler = new ManualTaskScheduler();
        var tier = NewTier(metrics, hugePages: true, scheduler);

        TierHelper.WriteUsers(tier, 0, SlabSlots + 1); // past half, into the second slab, the preparation never run
        Assert.NotNull(tier.SlabOf(1));
        Assert.Null(tier.NextSlab); // the writer did not wait for it

        Assert.Equal(1, scheduler.RunAll()); // it finishes late: nothing takes it
        Assert.Null(tier.ReadySlab);
        TierHelper.WriteUsers(tier, SlabSlots + 1, SlabSlots + (SlabSlots / 2) + 1); // half of the second slab: the third's starts
        Assert.NotNull(tier.NextSlab);
        Assert.Equal(1, scheduler.RunAll());

        TierHelper.WriteUsers(tier, SlabSlots + (SlabSlots / 2) + 1, Capacity);
        Assert.Null(tier.NextSlab); // the third slab is the last: nothing to prepare after it
        Assert.Equal(0, scheduler.Queued);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, Capacity);
    }

    [Fact]
    public void A_tier_without_huge_pages_prepares_nothing()
    {
        using var metrics = new ERCacheMetrics(null);
        var scheduler = new ManualTaskScheduler();
        var tier = NewTier(metrics, hugePages: false, scheduler);

        TierHelper.WriteUsers(tier, 0, 12_000); // across two slabs of 4,096 and past half of the third

        Assert.Null(tier.NextSlab);
        Assert.Equal(0, scheduler.Queued);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 12_000);
    }

    /// <summary>On memory nothing has touched yet (a fresh anonymous mapping from the C allocator: the GC may zero, and
    /// so touch, a managed array's memory itself), every page is mapped afterwards, and nothing else.</summary>
    [Fact]
    public unsafe void Touching_every_page_maps_the_whole_range()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // /proc/self/pagemap is Linux's
        }

        const int Bytes = (6 << 20) + 100;
        byte* memory = (byte*)NativeMemory.AllocZeroed(Bytes); // calloc of this size maps fresh, untouched pages
        try
        {
            long before = PresentPages((nint)memory, Bytes);
            HugePages.TouchEveryPage(new Span<byte>(memory, Bytes));

            Assert.True(before < PagesSpanned((nint)memory, Bytes) / 2, $"{before} pages present before"); // else the test proves nothing
            Assert.Equal(PagesSpanned((nint)memory, Bytes), PresentPages((nint)memory, Bytes));
            Assert.True(new ReadOnlySpan<byte>(memory, Bytes).IndexOfAnyExcept((byte)0) < 0);
        }
        finally
        {
            NativeMemory.Free(memory);
        }
    }

    private static SlabTier<LruOrder, Float32Codec> NewTier(ERCacheMetrics metrics, bool hugePages, TaskScheduler scheduler)
    {
        var tier = (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", Capacity, Dimensions, metrics, hugePages: hugePages);
        tier.SlabPreparation = scheduler;
        return tier;
    }

    private const int BasePage = 4096;

    private static long PagesSpanned(byte[] array) => PagesSpanned(Marshal.UnsafeAddrOfPinnedArrayElement(array, 0), array.Length);

    private static long PagesSpanned(nint address, long bytes)
    {
        long start = address & ~(long)(BasePage - 1);
        return (address + bytes - start + BasePage - 1) / BasePage;
    }

    private static long PresentPages(byte[] array)
    {
        long present = PresentPages(Marshal.UnsafeAddrOfPinnedArrayElement(array, 0), array.Length);
        GC.KeepAlive(array);
        return present;
    }

    /// <summary>How many of the 4 KB pages the range spans are in memory, from <c>/proc/self/pagemap</c> (one 64-bit
    /// entry per page; bit 63 says present, readable without privileges). An array must be pinned.</summary>
    private static long PresentPages(nint address, long bytes)
    {
        long pages = PagesSpanned(address, bytes);
        var entries = new byte[pages * 8];
        using (var pagemap = new FileStream("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0))
        {
            pagemap.Position = address / BasePage * 8;
            pagemap.ReadExactly(entries);
        }

        long present = 0;
        for (long i = 0; i < pages; i++)
        {
            present += (long)(BitConverter.ToUInt64(entries, (int)(i * 8)) >> 63);
        }

        return present;
    }
}
