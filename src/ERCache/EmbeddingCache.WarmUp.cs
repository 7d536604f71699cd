using System.Collections.Concurrent;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Models;
using ERCache.Regional;
using Microsoft.Extensions.Logging.Abstractions;
using ERCache.Internal;

namespace ERCache;

/// <summary>
/// Warm-up: nothing the cache compiles or starts lazily may eat the first callers' deadline. The JIT compiles the
/// request path (hit, miss, batching, the breaker, the deadline, failover and fallback, each storage format and
/// eviction order) the first time it runs, which on a cold process takes longer than a typical inference timeout. So
/// the constructor runs every path once, through its own request code on scratch model versions; <see cref="WarmUpAsync"/> adds the regional
/// store's connection.
/// </summary>
public sealed partial class EmbeddingCache
{
    /// <summary>The meter of the scratch model versions that warm the code up (not <c>ERCache</c>: warm-up is not traffic).</summary>
    internal const string WarmUpMeterName = "ERCache.WarmUp";

    private const long WarmUser = 1, FailingUser = 2, SlowUser = 3, FailsOnSecondCallUser = 4;

    // Storage shapes (format and eviction) whose code has run in this process; the request path itself is "".
    private static readonly ConcurrentDictionary<string, bool> WarmedShapes = new(StringComparer.Ordinal);

    private static long s_warmUpResults;

    /// <summary>For tests: the next cache built warms every shape again, as in a new process.</summary>
    internal static void ForgetWarmedShapes() => WarmedShapes.Clear();

    /// <summary>For tests: results the scratch model versions have served in this process.</summary>
    internal static long WarmUpResults => Interlocked.Read(ref s_warmUpResults);

    /// <inheritdoc />
    public async Task WarmUpAsync(CancellationToken cancellationToken = default)
    {
        CheckDisposed();
        var runtimes = _registry.States.Select(s => s.Current).ToArray();
        await Task.Run(() => WarmUpCode(runtimes.Select(r => r.Policy)), cancellationToken).ConfigureAwait(false);
        if (_regional is not null && runtimes.FirstOrDefault(r => r.Regional is not null) is { } regionalModel)
        {
            // A user id no request uses; a failure is counted and logged by the tier like any lookup's.
            await _regional.ReadAsync(
                regionalModel.RegionalField, RegionalValue.Length(regionalModel.Policy.RegionalFormat, regionalModel.Policy.Dimensions), [long.MinValue], _regional.ReadTimeout, cancellationToken).ConfigureAwait(false);
        }

        Log.WarmedUp(_logger, runtimes.Length);
    }

    /// <summary>Runs the request path once per storage shape not yet run in this process, through this cache's own
    /// request code on scratch model versions that are never registered (so no request can reach them): a built-in
    /// inference, the system clock (real deadlines pass), a meter of their own, and the cache's dispatcher when it is a
    /// built-in one (else <see cref="InferenceDispatcher.DedicatedThreads"/>). Synchronous; a few tens of milliseconds
    /// the first time in a process, nothing afterwards.</summary>
    private void WarmUpCode(IEnumerable<ModelPolicy> policies)
    {
        var models = new Dictionary<string, ModelOptions>(StringComparer.Ordinal);
        foreach (var policy in policies)
        {
            foreach (var tier in new[] { policy.Direct, policy.Failover })
            {
                string shape = $"{tier.Format}-{tier.Eviction}";
                if (tier.Enabled && WarmedShapes.TryAdd(shape, true))
                {
                    models[shape] = ScratchModel(policy.Dimensions, tier.Format, tier.Eviction, runInline: false);
                }
            }
        }

        if (WarmedShapes.TryAdd(string.Empty, true))
        {
            models["inline"] = ScratchModel(16, StorageFormat.Float32, EvictionStrategy.Lru, runInline: true);
        }

        if (models.Count == 0)
        {
            return;
        }

        // The scratch calls run on a built-in dispatcher: a custom one (a test's manual dispatcher, say) belongs to the
        // caller, and would receive calls it never asked for.
        var dispatcher = _dispatcher == InferenceDispatcher.ThreadPool || _dispatcher == InferenceDispatcher.Inline
            ? _dispatcher
            : InferenceDispatcher.DedicatedThreads;
        var inference = new WarmUpInference();
        using var metrics = new ERCacheMetrics(meterFactory: null, WarmUpMeterName); // warm-up is not traffic
        var states = models.Select(model =>
        {
            var policy = ModelPolicy.From(model.Key, model.Value);
            var state = new ModelVersionState(
                policy, inference, new ResultCounts(), TimeProvider.System, metrics, NullLogger.Instance, dispatcher, regional: null, Random.Shared);
            state.Publish(state.Prepare(policy));
            return state;
        }).ToArray();

        try
        {
            // Off the caller's synchronization context; the models run side by side (their deadlines are real time).
            Task.Run(() => Task.WhenAll(states.Select(state => ExerciseAsync(state.Current)))).GetAwaiter().GetResult();
        }
        finally
        {
            foreach (var state in states)
            {
                Interlocked.Add(ref s_warmUpResults, state.Results.Served);
                state.Retire(); // stops its scheduler and releases its tiers
            }
        }
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
    private async Task ExerciseAsync(ModelRuntime model)
    {
        int dims = model.Policy.Dimensions;
        var vector = new float[dims];
        await GetAsync(model, WarmUser, vector, CancellationToken.None).ConfigureAwait(false);
        await GetAsync(model, WarmUser, vector, CancellationToken.None).ConfigureAwait(false);
        await GetAsync(model, FailsOnSecondCallUser, vector, CancellationToken.None).ConfigureAwait(false);
        var users = new[] { WarmUser, FailingUser, 100 + dims };
        await GetManyAsync(model, users, new float[users.Length * dims], new EmbeddingResult[users.Length], CancellationToken.None).ConfigureAwait(false);
        await GetAsync(model, SlowUser, vector, CancellationToken.None).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromMilliseconds(25)).ConfigureAwait(false); // the late result is written; the direct TTL (1 ms) passes
        await GetAsync(model, FailsOnSecondCallUser, vector, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>The scratch model versions' inference: writes ones, fails <see cref="FailingUser"/>, answers
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
