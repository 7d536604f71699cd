using System.Globalization;
using BitFaster.Caching.Lru;
using ERCache.Inference;
using Microsoft.Extensions.Caching.Memory;

namespace ERCache.Benchmarks;

/// <summary>
/// Stampede protection, counted: 100 callers ask each cache for the same missing key at once, with a factory that
/// takes 20 ms; how many times does the factory run? (<c>--stampede</c>; counts, not timings.)
/// </summary>
public static class StampedeCount
{
    private const int Callers = 100;
    private static readonly TimeSpan FactoryTime = TimeSpan.FromMilliseconds(20);

    public static async Task RunAsync()
    {
        using var peers = new PeerCaches(10_000);
        var rows = new List<(string Cache, int Calls)>
        {
            ("BitFaster ConcurrentLru.GetOrAdd (not atomic)", await CountAsync(async (key, factory) => peers.Lru.GetOrAdd(key, k => factory(k).GetAwaiter().GetResult()))),
            ("BitFaster ConcurrentTLru.GetOrAdd (not atomic)", await CountAsync(async (key, factory) => peers.TLru.GetOrAdd(key, k => factory(k).GetAwaiter().GetResult()))),
            ("MemoryCache.GetOrCreateAsync", await CountAsync(async (key, factory) => (await peers.MemoryCache.GetOrCreateAsync(key, async e => { e.Size = 1; return await factory(key); }))!)),
            ("FusionCache.GetOrSetAsync", await CountAsync(async (key, factory) => await peers.Fusion.GetOrSetAsync<float[]>(PeerCaches.Key(key), async (_, _) => await factory(key)))),
            ("HybridCache.GetOrCreateAsync", await CountAsync(async (key, factory) => await peers.Hybrid.GetOrCreateAsync(PeerCaches.Key(key), async _ => await factory(key)))),
            ("ERCache.GetAsync", await CountERCacheAsync()),
        };

        Console.WriteLine($"| cache | factory calls for {Callers} concurrent callers of one key |");
        Console.WriteLine("|---|---:|");
        foreach (var (cache, calls) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {cache} | {calls} |"));
        }
    }

    private static async Task<int> CountAsync(Func<long, Func<long, Task<float[]>>, Task<float[]>> getOrAdd)
    {
        int calls = 0;
        async Task<float[]> Factory(long user)
        {
            Interlocked.Increment(ref calls);
            await Task.Delay(FactoryTime);
            return PeerCaches.NewVector(user);
        }

        using var start = new ManualResetEventSlim();
        var callers = Enumerable.Range(0, Callers).Select(_ => Task.Run(async () =>
        {
            start.Wait();
            await getOrAdd(42, Factory);
        })).ToArray();
        start.Set();
        await Task.WhenAll(callers);
        return calls;
    }

    private static async Task<int> CountERCacheAsync()
    {
        int calls = 0;
        var tower = new DelegateInference(async (batch, _) =>
        {
            Interlocked.Increment(ref calls);
            await Task.Delay(FactoryTime, CancellationToken.None);
            await PeerCaches.InferInline(batch, CancellationToken.None);
        });
        var options = new ERCacheOptions { Models = { ["m"] = new ModelOptions { Dimensions = PeerCaches.Dimensions } } };
        options.Models["m"].Direct.Ttl = TimeSpan.FromMinutes(1);
        options.Models["m"].Failover.Ttl = TimeSpan.FromHours(1);
        options.Models["m"].Inference.Timeout = TimeSpan.FromSeconds(5);
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["m"] = tower });
        using var start = new ManualResetEventSlim();
        var callers = Enumerable.Range(0, Callers).Select(_ => Task.Run(async () =>
        {
            start.Wait();
            await cache.GetAsync("m", 42, new float[PeerCaches.Dimensions]);
        })).ToArray();
        start.Set();
        await Task.WhenAll(callers);
        return calls;
    }
}
