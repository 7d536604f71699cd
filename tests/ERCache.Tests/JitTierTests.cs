using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>
/// The request path is compiled by tiering, with its profile data. The runtime compiles a method with a loop beside a
/// <c>stackalloc</c>, or a loop in an exception handler, once and <c>Optimized</c>, without that data, so the calls it
/// makes through the abstract tier are neither devirtualized nor inlined (8–9 % of a batch's time at 10,000 entries;
/// docs/benchmarks.md). A fresh process (ERCache.ColdStartProbe) runs every path a few times and reports each library
/// method's compilations from the runtime's method-load events: a new <c>stackalloc</c> beside a loop, or a loop in an
/// exception handler, fails this test. In the soak collection: the probe runs on real threads and the real clock.
/// </summary>
[Collection(SoakDefinition.Name)]
public sealed class JitTierTests
{
    // Run once per configuration or process, not per request: compiled Optimized, and that costs a request nothing. They
    // are also the test's control: if the probe stopped reading that tier, they would not read Optimized either.
    private static readonly string[] RunOnce =
    [
        "ERCache.EmbeddingCache::WarmUpCode",
        "ERCache.Models.ModelRegistry::ApplyValidated",
    ];

    [Fact]
    public async Task No_method_a_request_runs_is_compiled_without_tiering()
    {
        var compilations = (await ProbeProcess.RunAsync("jit-tiers"))
            .Select(line => line.Split(' ', 2))
            .ToDictionary(f => f[1], f => f[0].Split(','), StringComparer.Ordinal);

        // The probe saw the paths (a process whose events did not arrive would pass vacuously otherwise): the batch, the
        // single hit, the miss inline and queued, the failure path, each tier shape's read and write, the regional lookup
        // and grouped writes, a removal and a push announced to another host, and a batch and a single request during a
        // rollout's gradual switch.
        Assert.All(
            [
                "ERCache.EmbeddingCache::GetManyOn",
                "ERCache.Models.ModelRuntime::TryServeDirect",
                "ERCache.Models.ModelRuntime::Complete",
                "ERCache.Models.ModelRuntime::ServeFailure",
                "ERCache.Inference.InferenceScheduler::RunBatchAsync",
                "ERCache.Storage.RowKernels::ToHalf",
                "ERCache.Storage.SlotPage::PrefetchWholeSlot",
                "ERCache.Tiers.SlabTier`2[ERCache.Tiers.Eviction.LruOrder,ERCache.Storage.Float32Codec]::TryRead",
                "ERCache.Tiers.SlabTier`2[ERCache.Tiers.Eviction.SieveOrder,ERCache.Storage.Float16Codec]::Prefetch",
                "ERCache.Tiers.SlabTier`2[ERCache.Tiers.Eviction.FifoOrder,ERCache.Storage.Int8RowwiseCodec]::Write",
                "ERCache.Tiers.MemoryCacheTier`1[ERCache.Storage.Float32Codec]::TryRead",
                "ERCache.Models.ModelRuntime::ServeRegionalAsync",
                "ERCache.Regional.RegionalTier::FlushAsync",
                "ERCache.EmbeddingCache::RemoveLeasedAsync",
                "ERCache.EmbeddingCache::ApplyInvalidation",
                "ERCache.EmbeddingCache::SetVector",
                "ERCache.EmbeddingCache::GetManySwitchingAsync",
                "ERCache.Models.ModelRuntime::RouteFor",
                .. RunOnce,
            ],
            method => Assert.True(compilations.ContainsKey(method), $"the probe did not report {method} ({compilations.Count} methods reported)"));

        Assert.All(RunOnce, method => Assert.True(
            compilations[method].Contains("Optimized"),
            $"{method} no longer reads Optimized ({string.Join(',', compilations[method])}): either it changed (then drop it from RunOnce) or the probe no longer reads the tiers"));
        var withoutTiering = compilations.Where(m => m.Value.Contains("Optimized")).Select(m => m.Key).Except(RunOnce).Order(StringComparer.Ordinal).ToList();
        Assert.True(
            withoutTiering.Count == 0,
            $"compiled Optimized, without tiering's profile data (a loop beside a stackalloc, or a loop in an exception handler?): {string.Join(", ", withoutTiering)}");
    }
}
