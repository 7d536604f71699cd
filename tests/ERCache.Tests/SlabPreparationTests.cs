using System.Runtime.InteropServices;
using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;

namespace ERCache.Tests;

/// <summary>A tier on huge pages prepares its next slab (allocated, every page faulted in) off the write path, from the
/// moment half of the current slab is filled, and its first slab from the moment it is built, so that no write stalls on
/// a huge page's first touch under the tier's lock; a write that arrives before the preparation is done allocates the
/// slab itself (the first one on ordinary pages, a later one as before).</summary>
public sealed class SlabPreparationTests : IDisposable
{
    private const int Dimensions = 256, Capacity = 40_000, SlabSlots = 16_384; // 41.8 MB of 1 KB rows: slabs of 16,384

    private readonly ERCacheMetrics _metrics = new(null);
    private readonly ManualTaskScheduler _scheduler = new(); // the test runs the preparations (one instance per test)

    public void Dispose() => _metrics.Dispose();

    [Fact]
    public void The_first_slab_is_prepared_when_the_tier_is_built_and_taken_by_the_first_write()
    {
        if (!HugePages.Supported)
        {
            return; // no huge pages, no preparation (A_tier_without_huge_pages_prepares_nothing)
        }

        var tier = NewTier(hugePages: true);
        Assert.NotNull(tier.NextSlab);
        Assert.Null(tier.SlabOf(0));

        Assert.Equal(2, _scheduler.RunAll());
        var prepared = tier.ReadySlab!;
        Assert.Equal(PagesSpanned(prepared), PresentPages(prepared)); // every page faulted in before any write
        Assert.Equal(prepared.Length, tier.NextSlab!.FaultedInBytes);
        Assert.InRange(tier.GetStatistics().AllocatedBytes, (long)SlabSlots * 1024, (long)SlabSlots * 1100 + (2L << 20)); // + index and order

        TierHelper.WriteUsers(tier, 0, 1);
        Assert.Same(prepared, tier.SlabOf(0));
        Assert.Null(tier.NextSlab); // taken
        Assert.InRange(tier.GetStatistics().HugePageBytes, 7L * HugePages.PageBytes, 8L * HugePages.PageBytes); // 17.1 MB: 7 or 8 whole pages

        TierHelper.WriteUsers(tier, 1, SlabSlots / 2);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, SlabSlots / 2);
    }

    [Fact]
    public void A_slab_is_taken_once_allocated_and_its_faulting_in_stops_where_the_writes_have_come()
    {
        if (!HugePages.Supported)
        {
            return;
        }

        var tier = NewTier(hugePages: true);
        Assert.True(_scheduler.RunNext()); // allocated, not faulted in yet
        var allocated = tier.ReadySlab!;
        Assert.False(tier.NextSlab!.Work.IsCompleted);

        TierHelper.WriteUsers(tier, 0, 100); // the first write takes it
        Assert.Same(allocated, tier.SlabOf(0));
        var preparation = tier.FillingSlab!;
        Assert.InRange(tier.GetStatistics().HugePageBytes, 7L * HugePages.PageBytes, 8L * HugePages.PageBytes);

        // The writes are within 2 MB of its first page: faulting in stops there, so that the two never fault the same
        // huge page at once (a tier filled in a tight loop faults the rest itself, as without preparation).
        Assert.True(_scheduler.RunNext());
        Assert.True(preparation.Work.IsCompletedSuccessfully);
        Assert.Equal(0, preparation.FaultedInBytes);
        TierHelper.WriteUsers(tier, 100, SlabSlots);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, SlabSlots);
    }

    [Fact]
    public void A_first_write_before_the_first_slab_is_ready_puts_it_on_ordinary_pages_without_waiting()
    {
        if (!HugePages.Supported)
        {
            return;
        }

        var tier = NewTier(hugePages: true);

        TierHelper.WriteUsers(tier, 0, 1); // the preparation never ran
        Assert.NotNull(tier.SlabOf(0));
        Assert.Null(tier.NextSlab);
        Assert.Equal(0, tier.GetStatistics().HugePageBytes); // no huge page to fault in under the lock

        Assert.Equal(2, _scheduler.RunAll()); // it finishes late: nothing takes it
        Assert.Null(tier.ReadySlab);
        TierHelper.WriteUsers(tier, 1, SlabSlots / 2 + 1); // the next slab's preparation starts at half, as always
        Assert.NotNull(tier.NextSlab);
        Assert.Equal(2, _scheduler.RunAll());
        TierHelper.WriteUsers(tier, SlabSlots / 2 + 1, SlabSlots + 1);
        Assert.InRange(tier.GetStatistics().HugePageBytes, 7L * HugePages.PageBytes, 8L * HugePages.PageBytes); // the second slab's
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, SlabSlots + 1);
    }

    [Fact]
    public void The_next_slab_is_prepared_from_half_of_the_current_one_and_taken_with_every_page_in_memory()
    {
        if (!HugePages.Supported)
        {
            return;
        }

        var tier = TierWithFirstSlabPrepared();

        TierHelper.WriteUsers(tier, 0, SlabSlots / 2);
        Assert.Null(tier.NextSlab);
        Assert.Equal(0, _scheduler.Queued);

        TierHelper.WriteUsers(tier, SlabSlots / 2, SlabSlots / 2 + 1); // the slab's middle slot: the next one's preparation starts
        var preparation = tier.NextSlab;
        Assert.NotNull(preparation);
        Assert.False(preparation.Work.IsCompleted);
        long allocatedBefore = tier.GetStatistics().AllocatedBytes;

        Assert.Equal(2, _scheduler.RunAll());
        Assert.True(preparation.Work.IsCompletedSuccessfully);
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

        var tier = TierWithFirstSlabPrepared();

        TierHelper.WriteUsers(tier, 0, SlabSlots + 1); // past half, into the second slab, its preparation never run
        Assert.NotNull(tier.SlabOf(1));
        Assert.Null(tier.NextSlab); // the writer did not wait for it
        Assert.InRange(tier.GetStatistics().HugePageBytes, 14L * HugePages.PageBytes, 16L * HugePages.PageBytes); // a later slab keeps huge pages

        Assert.Equal(2, _scheduler.RunAll()); // it finishes late: nothing takes it
        Assert.Null(tier.ReadySlab);
        TierHelper.WriteUsers(tier, SlabSlots + 1, SlabSlots + (SlabSlots / 2) + 1); // half of the second slab: the third's starts
        Assert.NotNull(tier.NextSlab);
        Assert.Equal(2, _scheduler.RunAll());

        TierHelper.WriteUsers(tier, SlabSlots + (SlabSlots / 2) + 1, Capacity);
        Assert.Null(tier.NextSlab); // the third slab is the last: nothing to prepare after it
        Assert.Equal(0, _scheduler.Queued);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, Capacity);
    }

    [Fact]
    public void A_tier_without_huge_pages_prepares_nothing()
    {
        var tier = NewTier(hugePages: false);

        TierHelper.WriteUsers(tier, 0, 12_000); // across two slabs of 4,096 and past half of the third

        Assert.Null(tier.NextSlab);
        Assert.Equal(0, _scheduler.Queued);
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

    /// <summary>Faulting in may run while writes use the slab: it changes no value, whatever it meets.</summary>
    [Fact]
    public void Touching_every_page_keeps_every_value()
    {
        var array = GC.AllocateArray<byte>((3 << 20) + 100, pinned: true);
        new Random(27).NextBytes(array);
        array[4096] = 0; // a zero among the values: it stays zero
        var copy = array.ToArray();

        HugePages.TouchEveryPage(array);

        Assert.Equal(copy, array);
    }

    private SlabTier<LruOrder, Float32Codec> NewTier(bool hugePages) =>
        (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", Capacity, Dimensions, _metrics, hugePages: hugePages, slabPreparation: _scheduler);

    /// <summary>A huge-page tier whose first slab's preparation has run (allocated, then faulted in), before any write.</summary>
    private SlabTier<LruOrder, Float32Codec> TierWithFirstSlabPrepared()
    {
        var tier = NewTier(hugePages: true);
        Assert.Equal(2, _scheduler.RunAll());
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
