using System.Diagnostics.Tracing;
using System.Runtime.CompilerServices;
using ERCache;
using ERCache.Inference;
using ERCache.Testing;

namespace ERCache.ColdStartProbe;

/// <summary>
/// Prints how the runtime compiled each method of the library while this process ran its request paths: one line
/// "<c>&lt;tier&gt;[,&lt;tier&gt;…] &lt;type&gt;::&lt;method&gt;</c>" per method, its compilations in order, from the
/// runtime's own method-load events.
/// A method the runtime compiles <c>Optimized</c> (a loop beside a <c>stackalloc</c>, a loop in an exception handler)
/// never gets tiering's profile data, so its virtual calls are not devirtualized (docs/internals.md, "Code the runtime
/// tiers"); the tests read these lines to keep the request path out of that tier.
/// </summary>
internal static class JitTierProbe
{
    private const string EndMarker = nameof(ProbeEnd);

    public static async Task RunAsync()
    {
        using var listener = new MethodLoadListener();
        await RunRequestPathsAsync();
        ProbeEnd(); // compiled now, so its event comes after every method compiled above
        if (!listener.WaitForEnd(TimeSpan.FromSeconds(60)))
        {
            throw new TimeoutException("The runtime's method-load event of the probe's end did not arrive within 60 s.");
        }

        foreach (var (method, tiers) in listener.LibraryCompilations())
        {
            Console.WriteLine($"{tiers} {method}");
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ProbeEnd()
    {
    }

    /// <summary>Each path of a request a few times: misses inline and queued, a batch's misses and hits, single hits by
    /// name and handle, a refresh, a failure (the failover tier's read, then the fallback), in every tier format and
    /// eviction strategy, a tier large enough for the batch's whole-slot prefetch, and a model half-way through a
    /// rollout's gradual switch (each request split between the two versions); then the regional paths.</summary>
    private static async Task RunRequestPathsAsync()
    {
        var options = new ERCacheOptions();
        options.Models["inline"] = Model(64, inline: true, StorageFormat.Float32, EvictionStrategy.Lru, capacity: 1024);
        options.Models["queued"] = Model(64, inline: false, StorageFormat.Float16, EvictionStrategy.Sieve, capacity: 1024);
        options.Models["fifo"] = Model(64, inline: true, StorageFormat.Int8, EvictionStrategy.Fifo, capacity: 1024);
        options.Models["memory-cache"] = Model(64, inline: false, StorageFormat.Float32, EvictionStrategy.MemoryCache, capacity: 1024);
        options.Models["large"] = Model(256, inline: true, StorageFormat.Float32, EvictionStrategy.Lru, capacity: 40_000); // ≥ 32 MB
        var switching = Model(64, inline: true, StorageFormat.Float32, EvictionStrategy.Lru, capacity: 1024);
        switching.Version = "v1";
        switching.Rollout = new RolloutOptions
        {
            NextVersion = "v2", // warmed in the background, and half-way through its gradual switch: requests take both versions
            SwitchAt = DateTimeOffset.UtcNow - TimeSpan.FromHours(1),
            SwitchOver = TimeSpan.FromHours(2),
        };
        options.Models["switching"] = switching;
        var tower = new DelegateInference((batch, _) =>
        {
            var users = batch.UserIds.Span;
            int dims = batch.Dimensions;
            for (int i = 0; i < users.Length; i++)
            {
                if (users[i] % 1000 == 999)
                {
                    batch.Fail(i); // the failure path: the failover tier, then the fallback
                    continue;
                }

                batch.Destination.Span.Slice(i * dims, dims).Fill(users[i] * 0.001f);
            }

            return ValueTask.CompletedTask;
        });
        var towers = options.Models.Keys.ToDictionary(name => name, IEmbeddingInference (_) => tower);
        await using var cache = EmbeddingCache.Create(options, towers);
        foreach (var name in options.Models.Keys)
        {
            var model = cache.GetModel(name);
            int dims = options.Models[name].Dimensions;
            var vector = new float[dims];
            var users = Enumerable.Range(0, 64).Select(i => (long)i).ToArray();
            var vectors = new float[users.Length * dims];
            var results = new EmbeddingResult[users.Length];
            for (int round = 0; round < 3; round++)
            {
                await cache.GetManyAsync(name, users, vectors, results); // misses, then hits
                await model.GetManyAsync(users, vectors, results);
                for (long user = 100; user < 110; user++)
                {
                    await cache.GetAsync(name, user, vector); // a miss, then hits
                    await model.GetAsync(user, vector);
                }

                await cache.GetAsync(name, 999, vector); // fails
                await cache.GetAsync(name, 999, vector, new EmbeddingRequestOptions { ForceRefresh = true });
            }
        }

        await RunRegionalPathsAsync(tower);
    }

    /// <summary>Two hosts sharing an in-memory regional store: one's misses look the store up, infer and write back in
    /// groups; the other's find them there; a removal, a push and a clear on one reach the other.</summary>
    private static async Task RunRegionalPathsAsync(IEmbeddingInference tower)
    {
        static ERCacheOptions Options()
        {
            var options = new ERCacheOptions();
            options.Models["regional"] = Model(64, inline: true, StorageFormat.Float32, EvictionStrategy.Lru, capacity: 1024);
            return options;
        }

        var store = new InMemoryRegionalStore();
        var towers = new Dictionary<string, IEmbeddingInference> { ["regional"] = tower };
        await using var first = EmbeddingCache.Create(Options(), towers, new EmbeddingCacheServices { RegionalStore = store });
        await using var second = EmbeddingCache.Create(Options(), towers, new EmbeddingCacheServices { RegionalStore = store });
        var vector = new float[64];
        var vectors = new float[64 * 64];
        var results = new EmbeddingResult[64];
        for (int round = 0; round < 3; round++)
        {
            var users = Enumerable.Range(0, 64).Select(i => 10_000L + (round * 64) + i).ToArray();
            await first.GetManyAsync("regional", users, vectors, results); // regional misses, inference, grouped writes
            await first.GetAsync("regional", 20_000 + round, vector);
            await first.FlushRegionalWritesAsync();
            await second.GetManyAsync("regional", users, vectors, results); // regional hits, written to the local tiers
            await second.GetAsync("regional", 20_000 + round, vector);
            await first.RemoveAsync("regional", users[0]); // announced to the other host
            first.SetVector("regional", 30_000 + round, vector); // a push, announced too
        }

        first.Clear("regional"); // and a clear
        await first.FlushRegionalWritesAsync();
    }

    private static ModelOptions Model(int dimensions, bool inline, StorageFormat format, EvictionStrategy eviction, int capacity) => new()
    {
        Dimensions = dimensions,
        Inference = new InferenceOptions { Timeout = TimeSpan.FromMinutes(1), RunInline = inline },
        Direct = new TierOptions { Ttl = TimeSpan.FromHours(1), Capacity = capacity, Format = format, Eviction = eviction },
        Failover = new TierOptions { Ttl = TimeSpan.FromDays(1), Capacity = capacity, Format = format, Eviction = eviction },
    };

    /// <summary>The runtime's <c>MethodLoadVerbose</c> events (JIT keyword, verbose level): every compilation of each
    /// method, with its optimization tier from bits 7–9 of the event's <c>MethodFlags</c>. Their values were checked
    /// against the tiers the runtime's perf map names (<c>DOTNET_PerfMapEnabled=3</c>): 2 Optimized, 3 QuickJitted,
    /// 4 OptimizedTier1, 6 the instrumented tier 0.</summary>
    private sealed class MethodLoadListener : EventListener
    {
        private const EventKeywords JitKeyword = (EventKeywords)0x10;
        private static readonly string[] Tiers =
            ["Unknown", "MinOptJitted", "Optimized", "QuickJitted", "OptimizedTier1", "OptimizedTier1OSR", "QuickJittedInstrumented", "OptimizedTier1Instrumented"];

        private readonly Dictionary<string, List<string>> _compilations = new(StringComparer.Ordinal);
        private readonly ManualResetEventSlim _ended = new();

        public bool WaitForEnd(TimeSpan timeout) => _ended.Wait(timeout);

        /// <summary>The library's methods (not this probe's), each with its tiers comma-separated.</summary>
        public List<(string Method, string Tiers)> LibraryCompilations()
        {
            lock (_compilations)
            {
                return _compilations
                    .Where(m => m.Key.StartsWith("ERCache.", StringComparison.Ordinal) && !m.Key.StartsWith("ERCache.ColdStartProbe.", StringComparison.Ordinal))
                    .Select(m => (m.Key, string.Join(',', m.Value))).OrderBy(m => m.Key, StringComparer.Ordinal).ToList();
            }
        }

        public override void Dispose()
        {
            base.Dispose();
            _ended.Dispose();
        }

        protected override void OnEventSourceCreated(EventSource eventSource)
        {
            if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(eventSource, EventLevel.Verbose, JitKeyword);
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs eventData)
        {
            if (eventData.EventName?.StartsWith("MethodLoadVerbose", StringComparison.Ordinal) != true || eventData.Payload is null)
            {
                return;
            }

            string type = Field(eventData, "MethodNamespace");
            string name = Field(eventData, "MethodName");
            uint flags = Convert.ToUInt32(eventData.Payload[eventData.PayloadNames!.IndexOf("MethodFlags")], System.Globalization.CultureInfo.InvariantCulture);
            lock (_compilations)
            {
                string key = $"{type}::{name}";
                if (!_compilations.TryGetValue(key, out var tiers))
                {
                    _compilations[key] = tiers = [];
                }

                tiers.Add(Tiers[(flags >> 7) & 7]);
            }

            if (name == EndMarker && !_ended.IsSet) // its first compilation; the listener may be disposed after that
            {
                _ended.Set();
            }
        }

        private static string Field(EventWrittenEventArgs eventData, string name) =>
            eventData.Payload![eventData.PayloadNames!.IndexOf(name)]?.ToString() ?? "";
    }
}
