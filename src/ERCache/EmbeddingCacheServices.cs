using System.Diagnostics.Metrics;
using ERCache.Inference;
using ERCache.Regional;
using Microsoft.Extensions.Logging;

namespace ERCache;

/// <summary>
/// What an <see cref="EmbeddingCache"/> works with besides its options and inference; every property is optional and
/// has the default it names. Dependency injection fills it from the container; without DI, set what you need:
/// <code>EmbeddingCache.Create(options, inference, new EmbeddingCacheServices { RegionalStore = store })</code>
/// </summary>
public sealed class EmbeddingCacheServices
{
    /// <summary>The clock for every TTL and deadline; <see cref="System.TimeProvider.System"/> when null. Tests pass a
    /// <c>FakeTimeProvider</c>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Creates the <c>ERCache</c> meter; a private meter of that name when null.</summary>
    public IMeterFactory? MeterFactory { get; init; }

    /// <summary>Receives inference failures, rejected reloads and the regional tier's state changes; nothing is logged
    /// when null.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>Where delegate calls run; <see cref="InferenceDispatcher.DedicatedThreads"/> when null.</summary>
    public InferenceDispatcher? Dispatcher { get; init; }

    /// <summary>The store shared by the hosts of a region, or null for local tiers only. Its settings
    /// (<c>ERCache:Regional</c>) are read once, when the cache is built.</summary>
    public IRegionalStore? RegionalStore { get; init; }
}
