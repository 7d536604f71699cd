using System.Collections.Concurrent;
using ERCache.Inference;
using Microsoft.Extensions.Logging.Abstractions;
using ERCache.Internal;

namespace ERCache;

/// <summary>
/// Warm-up: nothing the cache compiles or starts lazily may eat the first callers' deadline. The JIT compiles the
/// request path (hit, miss, batching, the breaker, the deadline, failover and fallback, each storage format and
/// eviction order) the first time it runs, which on a cold process takes longer than a typical inference timeout. So
/// the constructor runs every path once on a scratch cache of its own; <see cref="WarmUpAsync"/> adds the regional
/// store's connection.
/// </summary>
public sealed partial class EmbeddingCache
{
    /// <summary>The meter of the scratch caches that warm the code up (not <c>ERCache</c>: warm-up is not traffic).</summary>
    internal const string WarmUpMeterName = "ERCache.WarmUp";

    private const long WarmUser = 1, FailingUser = 2, SlowUser = 3, FailsOnSecondCallUser = 4;

    // Storage shapes (format and eviction) whose code has run in this process; the request path itself is "".
    private static readonly ConcurrentDictionary<string, bool> WarmedShapes = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public async Task WarmUpAsync(CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        var runtimes = _registry.States.Select(s => s.Current).ToArray();
        await Task.Run(() => WarmUpCode(runtimes.Select(r => r.Policy), _dispatcher), cancellationToken).ConfigureAwait(false);
        if (_regional is not null && runtimes.FirstOrDefault(r => r.Regional is not null) is { } regionalModel)
        {
            // A user id no request uses; a failure is counted and logged by the tier like any lookup's.
            await _regional.ReadAsync(regionalModel.RegionalField, [long.MinValue], _regional.ReadTimeout, cancellationToken).ConfigureAwait(false);
        }

        Log.WarmedUp(_logger, runtimes.Length);
    }

    /// <summary>Runs the request path once per storage shape not yet run in this process, on a scratch cache with the
    /// same dispatcher when it is a built-in one (else <see cref="InferenceDispatcher.DedicatedThreads"/>), a built-in inference and the system clock (real deadlines pass). Synchronous; a few tens of
    /// milliseconds the first time in a process, nothing afterwards.</summary>
    private static void WarmUpCode(IEnumerable<ModelPolicy> policies, InferenceDispatcher dispatcher)
    {
        var options = new ERCacheOptions();
        foreach (var policy in policies)
        {
            foreach (var tier in new[] { policy.Direct, policy.Failover })
            {
                string shape = $"{tier.Format}-{tier.Eviction}";
                if (tier.Enabled && WarmedShapes.TryAdd(shape, true))
                {
                    options.Models[shape] = ScratchModel(policy.Dimensions, tier.Format, tier.Eviction, runInline: false);
                }
            }
        }

        if (WarmedShapes.TryAdd(string.Empty, true))
        {
            options.Models["inline"] = ScratchModel(16, StorageFormat.Float32, EvictionStrategy.Lru, runInline: true);
        }

        if (options.Models.Count == 0)
        {
            return;
        }

        // The scratch cache's calls run on a built-in dispatcher: a custom one (a test's manual dispatcher, say) belongs
        // to the caller, and would receive calls it never asked for.
        if (dispatcher != InferenceDispatcher.ThreadPool && dispatcher != InferenceDispatcher.Inline)
        {
            dispatcher = InferenceDispatcher.DedicatedThreads;
        }

        var inference = new WarmUpInference();
        var scratch = new EmbeddingCache(
            options, _ => inference, TimeProvider.System, meterFactory: null, NullLogger.Instance, ERCacheOptions.DefaultSectionPath, dispatcher,
            regionalStore: null, warmUpCode: false, meterName: WarmUpMeterName);

        // Off the caller's synchronization context; the models run side by side (their deadlines are real time).
        Task.Run(async () =>
        {
            await Task.WhenAll(options.Models.Keys.Select(model => ExerciseAsync(scratch, model))).ConfigureAwait(false);
            await scratch.DisposeAsync().ConfigureAwait(false);
        }).GetAwaiter().GetResult();
    }

    private static ModelOptions ScratchModel(int dimensions, StorageFormat format, EvictionStrategy eviction, bool runInline) => new()
    {
        Dimensions = dimensions,
        Inference = new InferenceOptions
        {
            Timeout = TimeSpan.FromMilliseconds(5), HardTimeout = TimeSpan.FromSeconds(1), MaxBatchSize = 4, RunInline = runInline,
            CircuitBreaker = new CircuitBreakerOptions { Enabled = true },
        },
        Direct = new TierOptions { Ttl = TimeSpan.FromMilliseconds(1), Capacity = 8, Eviction = eviction, Format = format },
        Failover = new TierOptions { Ttl = TimeSpan.FromHours(1), Capacity = 8, Eviction = eviction, Format = format },
    };

    /// <summary>Each rule of the request path once: fresh, direct hit, a batch with a failed row, a deadline passed
    /// (fallback, then a late result written), failover after an expired direct entry.</summary>
    private static async Task ExerciseAsync(EmbeddingCache cache, string model)
    {
        int dims = cache.GetPolicy(model).Dimensions;
        var vector = new float[dims];
        await cache.GetAsync(model, WarmUser, vector).ConfigureAwait(false);
        await cache.GetAsync(model, WarmUser, vector).ConfigureAwait(false);
        await cache.GetAsync(model, FailsOnSecondCallUser, vector).ConfigureAwait(false);
        var users = new[] { WarmUser, FailingUser, 100 + dims };
        await cache.GetManyAsync(model, users, new float[users.Length * dims], new EmbeddingResult[users.Length]).ConfigureAwait(false);
        await cache.GetAsync(model, SlowUser, vector).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromMilliseconds(25)).ConfigureAwait(false); // the late result is written; the direct TTL (1 ms) passes
        await cache.GetAsync(model, FailsOnSecondCallUser, vector).ConfigureAwait(false);
    }

    /// <summary>The scratch caches' inference: writes ones, fails <see cref="FailingUser"/>, answers
    /// <see cref="SlowUser"/> after the deadline, and fails <see cref="FailsOnSecondCallUser"/> the second time.</summary>
    private sealed class WarmUpInference : IEmbeddingInference
    {
        private readonly ConcurrentDictionary<string, bool> _calledOnce = new(StringComparer.Ordinal);

        public async ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            var users = batch.UserIds;
            if (users.Span.Contains(SlowUser))
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), CancellationToken.None).ConfigureAwait(false);
            }

            for (int i = 0; i < batch.Count; i++)
            {
                long user = users.Span[i];
                if (user == FailingUser || (user == FailsOnSecondCallUser && !_calledOnce.TryAdd(batch.Model, true)))
                {
                    batch.Fail(i);
                }
                else
                {
                    batch.GetRow(i).Span.Fill(1f);
                }
            }
        }
    }
}
