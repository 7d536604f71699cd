using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Tiers;
using Microsoft.Extensions.Options;

namespace ERCache.Policies;

/// <summary>
/// Everything a request needs for one model, frozen together: a request reads one instance from start to
/// end, so a reload never mixes old and new settings within a request.
/// </summary>
internal sealed class ModelRuntime
{
    public ModelRuntime(ModelPolicy policy, EmbeddingTier? direct, EmbeddingTier? failover, IEmbeddingInference? inference, InferenceScheduler scheduler, long timestampFrequency)
    {
        Scheduler = scheduler;
        InferenceTimeout = ToTimestampTicks(policy.InferenceTimeout, timestampFrequency);
        Policy = policy;
        Direct = direct;
        Failover = failover;
        Inference = inference;
        DirectTtl = ToTimestampTicks(policy.Direct.Ttl, timestampFrequency);
        FailoverTtl = ToTimestampTicks(policy.Failover.Ttl, timestampFrequency);
    }

    public ModelPolicy Policy { get; }

    public EmbeddingTier? Direct { get; }

    public EmbeddingTier? Failover { get; }

    public IEmbeddingInference? Inference { get; }

    /// <summary>Runs this model version's inference; shared by every runtime of the same version and dimensions.</summary>
    public InferenceScheduler Scheduler { get; }

    /// <summary>The caller's deadline in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long InferenceTimeout { get; }

    /// <summary>Direct TTL in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long DirectTtl { get; }

    /// <summary>Failover TTL in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long FailoverTtl { get; }

    private static long ToTimestampTicks(TimeSpan ttl, long frequency)
    {
        var ticks = (Int128)ttl.Ticks * frequency / TimeSpan.TicksPerSecond;
        return ticks > long.MaxValue ? long.MaxValue : (long)ticks;
    }
}

/// <summary>
/// The per-model policy registry: validated policies, their tiers and their inference, swapped atomically
/// on reload. A model whose <c>Dimensions</c> or <c>Version</c> changes gets new, empty tiers; a tier whose
/// storage settings (enabled, capacity, eviction, format) change is rebuilt empty; a TTL or inference
/// change keeps the cached vectors.
/// </summary>
internal sealed class ModelPolicyRegistry
{
    private readonly Lock _applyLock = new();
    private readonly Func<string, IEmbeddingInference?> _resolveInference;
    private readonly ERCacheOptionsValidator _validator;
    private readonly ERCacheMetrics _metrics;
    private readonly long _timestampFrequency;
    private readonly TimeProvider _time;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private FrozenDictionary<string, ModelRuntime> _models = FrozenDictionary<string, ModelRuntime>.Empty;

    public ModelPolicyRegistry(
        ERCacheOptions options,
        Func<string, IEmbeddingInference?> resolveInference,
        TimeProvider timeProvider,
        ERCacheMetrics metrics,
        string sectionPath,
        Microsoft.Extensions.Logging.ILogger logger)
    {
        _time = timeProvider;
        _logger = logger;
        _resolveInference = resolveInference;
        _validator = new ERCacheOptionsValidator(sectionPath);
        _metrics = metrics;
        _timestampFrequency = timeProvider.TimestampFrequency;
        Apply(options);

        var missing = _models.Values.Where(m => m.Inference is null).Select(m => m.Policy.Name).Order(StringComparer.Ordinal).ToArray();
        if (missing.Length > 0)
        {
            throw new InvalidOperationException(
                $"No inference is registered for model(s) {string.Join(", ", missing.Select(m => $"'{m}'"))}: " +
                "call AddModel(name, inference), register a keyed IEmbeddingInference with the model name as key, " +
                "or pass the inference to EmbeddingCache.Create.");
        }

        metrics.ObserveTiers(() => ObserveTiers(t => t.Count), () => ObserveTiers(t => t.AllocatedBytes));
        metrics.ObserveSchedulers(ObserveInFlight, ObserveCircuits);
    }

    public IReadOnlyCollection<string> ModelNames => Volatile.Read(ref _models).Keys;

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
            var current = _models;
            var next = new Dictionary<string, ModelRuntime>(StringComparer.OrdinalIgnoreCase);
            foreach (var (name, modelOptions) in options.Models)
            {
                var policy = ModelPolicy.From(name, modelOptions);
                current.TryGetValue(name, out var previous);
                bool keep = previous is not null && policy.KeepsVectorsOf(previous.Policy);
                var direct = keep && previous!.Policy.Direct.SameStorageAs(policy.Direct)
                    ? previous.Direct
                    : TierFactory.Create(policy, policy.Direct, _metrics);
                var failover = keep && previous!.Policy.Failover.SameStorageAs(policy.Failover)
                    ? previous.Failover
                    : TierFactory.Create(policy, policy.Failover, _metrics);
                var inference = previous?.Inference ?? _resolveInference(name);

                // In-flight inference, coalescing and breaker state carry over while the version stays.
                var scheduler = keep ? previous!.Scheduler : new InferenceScheduler(_time, _metrics, _logger);
                var runtime = new ModelRuntime(policy, direct, failover, inference, scheduler, _timestampFrequency);
                scheduler.Attach(runtime);
                next[name] = runtime;
            }

            // Dropped tiers are simply unreferenced: a request still holding the old runtime finishes on it.
            Volatile.Write(ref _models, next.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase));
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
