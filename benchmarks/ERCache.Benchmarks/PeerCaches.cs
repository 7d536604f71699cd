using System.Collections.Concurrent;
using System.ComponentModel;
using BitFaster.Caching.Lru;
using ERCache.Inference;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using ZiggyCreatures.Caching.Fusion;

namespace ERCache.Benchmarks;

/// <summary>
/// The .NET caches a user would pick instead of ERCache, each holding the same 256-float vectors by user: the
/// <c>ConcurrentDictionary</c> floor, BitFaster.Caching's <c>ConcurrentLru</c> and <c>ConcurrentTLru</c> (TTL-checked,
/// like ERCache), <c>MemoryCache</c>, FusionCache and HybridCache (with <c>float[]</c>, which it serializes, and with
/// an immutable wrapper, which it keeps as is). String keys for FusionCache and HybridCache are built once, up front,
/// which flatters them slightly.
/// </summary>
public sealed class PeerCaches : IDisposable
{
    public const int Dimensions = 256;
    private readonly ServiceProvider _services;

    public PeerCaches(int capacity)
    {
        Capacity = capacity;
        Dictionary = new ConcurrentDictionary<long, float[]>();
        Lru = new ConcurrentLru<long, float[]>(capacity);
        TLru = new ConcurrentTLru<long, float[]>(capacity, TimeSpan.FromDays(1));
        MemoryCache = new MemoryCache(new MemoryCacheOptions { SizeLimit = capacity });
        Fusion = new FusionCache(new FusionCacheOptions { DefaultEntryOptions = new FusionCacheEntryOptions { Duration = TimeSpan.FromDays(1) } });
        _services = new ServiceCollection()
            .AddHybridCache(o => o.DefaultEntryOptions = new HybridCacheEntryOptions { Expiration = TimeSpan.FromDays(1), LocalCacheExpiration = TimeSpan.FromDays(1) })
            .Services.BuildServiceProvider();
        Hybrid = _services.GetRequiredService<HybridCache>();
    }

    public int Capacity { get; }

    /// <summary>The store sizes the hit and batch suites run at: 10,000 and 1,000,000, or <c>ERCACHE_BENCH_ENTRIES</c>.</summary>
    public static IEnumerable<int> EntryCounts() =>
        Environment.GetEnvironmentVariable("ERCACHE_BENCH_ENTRIES") is { Length: > 0 } list
            ? list.Split(',').Select(e => int.Parse(e, System.Globalization.CultureInfo.InvariantCulture))
            : [10_000, 1_000_000];

    public ConcurrentDictionary<long, float[]> Dictionary { get; }

    public ConcurrentLru<long, float[]> Lru { get; }

    public ConcurrentTLru<long, float[]> TLru { get; }

    public MemoryCache MemoryCache { get; }

    public FusionCache Fusion { get; }

    public HybridCache Hybrid { get; }

    /// <summary>The vector every store holds for <paramref name="user"/> (ERCache's inference writes the same).</summary>
    public static void Fill(long user, Span<float> vector) => vector.Fill(user * 0.001f);

    /// <summary>A new array holding <paramref name="user"/>'s vector: what each peer's factory stores on a miss.</summary>
    public static float[] NewVector(long user)
    {
        var vector = new float[Dimensions];
        Fill(user, vector);
        return vector;
    }

    public static string Key(long user) => "u:" + user.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static string ImmutableKey(long user) => "i:" + user.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Puts users <c>0..count</c> into the stores named (every store by default); a benchmark process fills
    /// only the store it measures, since filling 1,000,000 entries into every store per process is most of a run.</summary>
    public void Populate(int count, Store stores = Store.All)
    {
        var options = new MemoryCacheEntryOptions { Size = 1 };
        for (long user = 0; user < count; user++)
        {
            var vector = NewVector(user);
            if (stores.HasFlag(Store.Dictionary))
            {
                Dictionary[user] = vector;
            }

            if (stores.HasFlag(Store.Lru))
            {
                Lru.AddOrUpdate(user, vector);
            }

            if (stores.HasFlag(Store.TLru))
            {
                TLru.AddOrUpdate(user, vector);
            }

            if (stores.HasFlag(Store.MemoryCache))
            {
                MemoryCache.Set(user, vector, options);
            }

            if (stores.HasFlag(Store.Fusion))
            {
                Fusion.Set(Key(user), vector);
            }

            if (stores.HasFlag(Store.Hybrid))
            {
                Hybrid.SetAsync(Key(user), vector).AsTask().GetAwaiter().GetResult();
            }

            if (stores.HasFlag(Store.HybridImmutable))
            {
                Hybrid.SetAsync(ImmutableKey(user), new ImmutableVector(vector)).AsTask().GetAwaiter().GetResult();
            }
        }
    }

    /// <summary>An ERCache with one model <c>m</c> of 256 dimensions, a direct tier of <paramref name="capacity"/>
    /// (<paramref name="eviction"/>, LRU unless given; <paramref name="format"/>), failover off and inference inline unless <paramref name="defaults"/>, the
    /// circuit breaker on unless <paramref name="breaker"/> is false.</summary>
    public static EmbeddingCache CreateERCache(
        int capacity, StorageFormat format = StorageFormat.Float32, bool defaults = false, bool breaker = true, EvictionStrategy eviction = EvictionStrategy.Lru,
        bool hugePages = true)
    {
        var model = new ModelOptions
        {
            Dimensions = Dimensions,
            Inference = new InferenceOptions
            {
                Timeout = TimeSpan.FromMinutes(1), MaxBatchSize = 1024, RunInline = !defaults, CircuitBreaker = new CircuitBreakerOptions { Enabled = breaker },
            },
            Direct = new TierOptions { Ttl = TimeSpan.FromDays(1), Capacity = capacity, Eviction = eviction, Format = format, HugePages = hugePages },
            Failover = defaults ? new TierOptions { Ttl = TimeSpan.FromDays(2), Capacity = capacity } : new TierOptions { Enabled = false },
        };
        var options = new ERCacheOptions { Models = { ["m"] = model } };
        return EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["m"] = new DelegateInference(InferInline) });
    }

    /// <summary>Fills ERCache with users <c>0..count</c> through its public API, 1,024 users per call.</summary>
    public static void Populate(EmbeddingCache cache, int count)
    {
        var ids = Enumerable.Range(0, count).Select(i => (long)i).ToArray();
        var vectors = new float[1024 * Dimensions];
        var results = new EmbeddingResult[1024];
        for (int start = 0; start < ids.Length; start += 1024)
        {
            int n = Math.Min(1024, ids.Length - start);
            cache.GetManyAsync("m", ids.AsMemory(start, n), vectors.AsMemory(0, n * Dimensions), results.AsMemory(0, n)).AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>The instant, synchronous inference every ERCache in the benchmarks uses.</summary>
    public static ValueTask InferInline(InferenceBatch batch, CancellationToken cancellationToken)
    {
        var users = batch.UserIds.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            Fill(users[i], batch.GetRow(i).Span);
        }

        return ValueTask.CompletedTask;
    }

    public void Dispose()
    {
        MemoryCache.Dispose();
        Fusion.Dispose();
        _services.Dispose();
    }

    /// <summary>The peer stores, to fill some of them.</summary>
    [Flags]
    public enum Store
    {
        None = 0,
        Dictionary = 1,
        Lru = 2,
        TLru = 4,
        MemoryCache = 8,
        Fusion = 16,
        Hybrid = 32,
        HybridImmutable = 64,
        All = 127,
    }

    /// <summary>How HybridCache avoids a serializer round trip per read: a type it may keep as is.</summary>
    [ImmutableObject(true)]
    public sealed class ImmutableVector(float[] values)
    {
        public float[] Values { get; } = values;
    }
}
