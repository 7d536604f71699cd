using ERCache.Redis;
using ERCache.Regional;
using ERCache.Testing;

namespace ERCache.Replay.Replay;

/// <summary>The store a replay's hosts share, from <c>--regional</c>, and what closes it.</summary>
internal sealed class RegionalStore : IDisposable
{
    private readonly IDisposable? _owned;

    private RegionalStore(IRegionalStore store, IDisposable? owned)
    {
        Store = store;
        _owned = owned;
    }

    public IRegionalStore Store { get; }

    /// <summary>Null for <paramref name="spec"/> null; <c>memory</c>: a new in-process store; <c>redis=HOST:PORT</c>: a
    /// connection, with every model's version suffixed by this run's id, so entries of earlier runs (or anyone else's)
    /// are invisible without deleting anything.</summary>
    public static RegionalStore? Open(string? spec, ERCacheOptions options)
    {
        if (spec is null)
        {
            return null;
        }

        if (spec == "memory")
        {
            return new RegionalStore(new InMemoryRegionalStore(), null);
        }

        string run = Guid.NewGuid().ToString("N")[..12];
        foreach (var model in options.Models.Values)
        {
            model.Version = $"{model.Version}#replay-{run}";
        }

        var redis = RedisRegionalStore.Connect(spec["redis=".Length..]);
        return new RegionalStore(redis, redis);
    }

    public void Dispose() => _owned?.Dispose();
}
