using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Regional;
using ERCache.Tiers;
using Microsoft.Extensions.Options;

namespace ERCache.Models;

/// <summary>
/// The per-model policy registry: validated policies, their tiers and their inference, swapped atomically
/// on reload. A model whose <c>Dimensions</c> or <c>Version</c> changes gets new, empty tiers; a tier whose
/// storage settings (enabled, capacity, eviction, format) change is rebuilt empty; a TTL or inference
/// change keeps the cached vectors.
/// </summary>
internal sealed class ModelRegistry : IDisposable
{
    private readonly Lock _applyLock = new();
    private readonly Func<string, IEmbeddingInference?> _resolveInference;
    private readonly ERCacheOptionsValidator _validator;
    private readonly ERCacheMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private readonly InferenceDispatcher _dispatcher;
    private readonly RegionalTier? _regional;
    private FrozenDictionary<string, ModelRuntime> _models = FrozenDictionary<string, ModelRuntime>.Empty;

    public ModelRegistry(
        ERCacheOptions options,
        Func<string, IEmbeddingInference?> resolveInference,
        TimeProvider timeProvider,
        ERCacheMetrics metrics,
        string sectionPath,
        Microsoft.Extensions.Logging.ILogger logger,
        InferenceDispatcher dispatcher,
        RegionalTier? regional)
    {
        _dispatcher = dispatcher;
        _regional = regional;
        _time = timeProvider;
        _logger = logger;
        _resolveInference = resolveInference;
        _validator = new ERCacheOptionsValidator(sectionPath);
        _metrics = metrics;
        Apply(options);
        metrics.ObserveTiers(() => ObserveTiers(t => t.Count), () => ObserveTiers(t => t.AllocatedBytes));
        metrics.ObserveSchedulers(ObserveInFlight, ObserveCircuits);
    }

    public IReadOnlyCollection<string> ModelNames => Volatile.Read(ref _models).Keys;

    /// <summary>The current set of models; a reload replaces it with a new object (model handles compare it).</summary>
    public object Snapshot => Volatile.Read(ref _models);

    public bool TryGet(string model, out ModelRuntime runtime) =>
        Volatile.Read(ref _models).TryGetValue(model, out runtime!);

    public IEnumerable<ModelRuntime> Runtimes => Volatile.Read(ref _models).Values;

    /// <summary>Validates <paramref name="options"/> and swaps in the new set of models; nothing changes if invalid.</summary>
    public void Apply(ERCacheOptions options)
    {
        var errors = _validator.Collect(options);
        if (errors.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(ERCacheOptions), errors);
        }

        lock (_applyLock)
        {
            // Build and check everything first; attach the schedulers only once nothing can fail, then swap all models.
            var current = _models;
            var next = new Dictionary<string, ModelRuntime>(StringComparer.OrdinalIgnoreCase);
            var missing = new List<string>();
            foreach (var (name, modelOptions) in options.Models)
            {
                var policy = ModelPolicy.From(name, modelOptions);
                current.TryGetValue(name, out var previous);
                var inference = previous?.Inference ?? _resolveInference(name);
                if (inference is null)
                {
                    missing.Add(name);
                    continue;
                }

                bool keep = previous is not null && policy.KeepsVectorsOf(previous.Policy);
                var direct = keep && previous!.Policy.Direct.SameStorageAs(policy.Direct)
                    ? previous.Direct
                    : TierFactory.Create(policy, policy.Direct, _metrics);
                var failover = keep && previous!.Policy.Failover.SameStorageAs(policy.Failover)
                    ? previous.Failover
                    : TierFactory.Create(policy, policy.Failover, _metrics);

                // In-flight inference, coalescing and breaker state carry over while the version stays.
                var scheduler = keep ? previous!.Scheduler : new InferenceScheduler(_time, _metrics, _logger, _dispatcher);
                next[name] = new ModelRuntime(policy, direct, failover, inference, scheduler, _regional, _time, _metrics, previous?.Health ?? new ModelHealth());
            }

            if (missing.Count > 0)
            {
                throw new InvalidOperationException(
                    $"No inference is registered for model(s) {string.Join(", ", missing.Order(StringComparer.Ordinal).Select(m => $"'{m}'"))}: " +
                    "call AddModel(name, inference), register a keyed IEmbeddingInference with the model name as key, " +
                    "or pass the inference to EmbeddingCache.Create.");
            }

            foreach (var runtime in next.Values)
            {
                runtime.Scheduler.Attach(runtime.Policy, runtime.Inference, runtime);
            }

            // Dropped tiers are simply unreferenced: a request still holding the old runtime finishes on it.
            Volatile.Write(ref _models, next.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase));
        }
    }

    /// <summary>Disposes every model's scheduler (timers, spare call and batch; queued users get an error) and tiers.
    /// Called once no request runs any more.</summary>
    public void Dispose()
    {
        lock (_applyLock)
        {
            foreach (var runtime in _models.Values)
            {
                runtime.Scheduler.Dispose();
                runtime.Direct?.Dispose();
                runtime.Failover?.Dispose();
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveInFlight() =>
        Runtimes.Select(r => new Measurement<int>(r.Scheduler.InFlight, ERCacheMetrics.ModelTags(r.Policy.Name)));

    private IEnumerable<Measurement<int>> ObserveCircuits() =>
        Runtimes.Where(r => r.Scheduler.BreakerState is not null)
            .Select(r => new Measurement<int>((int)r.Scheduler.BreakerState!.Value, ERCacheMetrics.ModelTags(r.Policy.Name)));

    private IEnumerable<Measurement<long>> ObserveTiers(Func<EmbeddingTier, long> measure)
    {
        foreach (var runtime in Runtimes)
        {
            foreach (var tier in new[] { runtime.Direct, runtime.Failover })
            {
                if (tier is not null)
                {
                    yield return new Measurement<long>(measure(tier), ERCacheMetrics.TierTags(runtime.Policy.Name, tier.Policy.Kind));
                }
            }
        }
    }
}
