using System.Globalization;
using System.Runtime.InteropServices;
using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;

namespace ERCache.Tests;

/// <summary>Huge pages for large slabs and indexes: which bytes are advised, that the kernel marks them, and that a tier
/// built on them holds and returns exactly what one without them does.</summary>
public sealed class HugePagesTests
{
    private const long Page = HugePages.PageBytes;

    [Theory]
    [InlineData(0L, 4 * Page, 0L, 4 * Page)]               // aligned: every page
    [InlineData(16L, 4 * Page, Page, 3 * Page)]            // an array's data starts past its header: the first page is partial
    [InlineData(Page - 1, 2 * Page, Page, Page)]
    [InlineData(16L, 2 * Page - 32, Page, 0L)]             // ends before the second boundary: no whole page
    [InlineData(16L, Page, Page, 0L)]
    public void Whole_pages_within_a_range(long offset, long bytes, long expectedStart, long expectedLength)
    {
        const long Base = 1L << 40; // an aligned base, so that the cases read as offsets
        var (start, length) = HugePages.WholePagesWithin((nint)(Base + offset), bytes);

        Assert.Equal(expectedLength, length);
        if (length > 0)
        {
            Assert.Equal(Base + expectedStart, (long)start);
        }
    }

    [Fact]
    public void Madvise_is_found_on_linux()
    {
        Assert.Equal(OperatingSystem.IsLinux(), HugePages.Supported);
    }

    [Fact]
    public void A_large_array_is_advised_and_the_kernel_marks_its_whole_pages()
    {
        if (!HugePages.Supported)
        {
            return; // nothing to advise off Linux (the test above checks that this is the only case)
        }

        var array = HugePages.Allocate<byte>(8 << 20, advise: true, out long advised);

        var (start, whole) = HugePages.WholePagesWithin(AddressOf(array), array.Length);
        Assert.True(whole >= 3 * Page, $"{whole} bytes of whole pages in 8 MB");
        Assert.Equal(whole, advised);
        Assert.All(array, b => Assert.Equal(0, b)); // zeroed, as any new array
        if (ThpMode() is "always" or "madvise")
        {
            Assert.NotEqual(false, ThpEligible(start)); // the kernel lists the advised range as eligible (null: it does not say)
        }

        GC.KeepAlive(array);
    }

    [Fact]
    public void Small_arrays_and_arrays_not_to_advise_are_ordinary()
    {
        var small = HugePages.Allocate<uint>((int)(HugePages.MinBytes / sizeof(uint)) - 1, advise: true, out long advisedSmall);
        var notAsked = HugePages.Allocate<byte>(8 << 20, advise: false, out long advisedNotAsked);

        // Not asserted: that the kernel lists the array's memory as not eligible. The GC reuses memory that advised
        // arrays freed (slabs of other tests' tiers, prepared slabs a write did not wait for) for ordinary arrays, and the
        // advice stays with the range, so in a shared test process that depends on what ran before.
        Assert.Equal(0, advisedSmall);
        Assert.Equal(0, advisedNotAsked);

        GC.KeepAlive(small);
        GC.KeepAlive(notAsked);
    }

    /// <summary>A tier of 1 KB rows with huge pages: slabs of 16,384 slots (about 17 MB) instead of 4,096, advised, and
    /// across the slab boundaries every user reads back its own vector.</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_large_tier_asks_for_huge_pages_only_when_configured_and_holds_the_same(bool hugePages)
    {
        const int Dimensions = 256, Capacity = 40_000, Users = 36_000; // 41.8 MB; past the second slab of 16,384
        using var metrics = new ERCacheMetrics(null);
        var preparation = new ManualTaskScheduler(); // the first slab prepared before the writes; later ones written in place
        var tier = (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", Capacity, Dimensions, metrics, hugePages: hugePages, slabPreparation: preparation);
        preparation.RunAll();
        TierHelper.WriteUsers(tier, 0, Users);

        bool advised = hugePages && HugePages.Supported;
        Assert.Equal(advised ? 16_384 : 4_096, tier.SlotsPerPage);
        if (advised)
        {
            // Three slabs: two of 17.1 MB (7 or 8 whole huge pages each) and the last of 7,232 slots (7.5 MB, 2 or 3).
            Assert.InRange(tier.GetStatistics().HugePageBytes, 16 * Page, 19 * Page);
        }
        else
        {
            Assert.Equal(0, tier.GetStatistics().HugePageBytes);
        }

        TierHelper.AssertEveryUserReadsItsOwnVector(tier, Users);
    }

    /// <summary>A tier under <c>MinHugePageTierBytes</c> (30,000 rows of 1 KB: 31.3 MB) keeps its ~4 MB growth on
    /// ordinary pages: slabs of 4,096 slots, none advised.</summary>
    [Fact]
    public void A_tier_under_the_huge_page_threshold_keeps_its_slabs()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = (SlabTier<FifoOrder, Float32Codec>)TierHelper.Create("Fifo", capacity: 30_000, dimensions: 256, metrics, hugePages: true);
        tier.Write(1, TierHelper.Vector(1, 256), writtenAt: 0);

        Assert.True(30_000L * SlotPage.StrideOf(1024) < SlabTier<FifoOrder, Float32Codec>.MinHugePageTierBytes);
        Assert.Equal(4_096, tier.SlotsPerPage);
        Assert.Equal(0, tier.GetStatistics().HugePageBytes);
        Assert.True(TierHelper.Contains(tier, 1));
    }

    /// <summary>Where <paramref name="array"/>'s data starts (large arrays do not move unless the LOH is compacted, which
    /// nothing here asks for; the advised ones are pinned).</summary>
    private static nint AddressOf<T>(T[] array) => Marshal.UnsafeAddrOfPinnedArrayElement(array, 0);

    /// <summary>The kernel's THP mode (the bracketed word of <c>enabled</c>), or null where there is none.</summary>
    private static string? ThpMode()
    {
        const string Path = "/sys/kernel/mm/transparent_hugepage/enabled";
        if (!File.Exists(Path))
        {
            return null;
        }

        string text = File.ReadAllText(Path);
        int open = text.IndexOf('[', StringComparison.Ordinal), close = text.IndexOf(']', StringComparison.Ordinal);
        return open >= 0 && close > open ? text[(open + 1)..close] : null;
    }

    /// <summary>Whether <c>/proc/self/smaps</c> says the mapping holding <paramref name="address"/> may use huge pages;
    /// null when this kernel does not say (its smaps has no <c>THPeligible</c> line, before Linux 4.20).</summary>
    private static bool? ThpEligible(nint address)
    {
        bool inside = false, found = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-', StringComparison.Ordinal), space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong from) &&
                ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong to))
            {
                inside = (ulong)address >= from && (ulong)address < to;
                found |= inside;
            }
            else if (inside && line.StartsWith("THPeligible:", StringComparison.Ordinal))
            {
                return line.AsSpan("THPeligible:".Length).Trim() is "1";
            }
        }

        return found ? null : throw new InvalidOperationException($"no mapping in /proc/self/smaps holds 0x{address:x}");
    }
}
