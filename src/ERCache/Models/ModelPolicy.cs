using ERCache.Internal;

namespace ERCache;

/// <summary>
/// The validated, immutable settings of one model. A configuration reload builds a new instance and
/// swaps it in atomically; a request reads one instance from start to end.
/// </summary>
public sealed class ModelPolicy
{
    private ModelPolicy(string name, ModelOptions options)
    {
        Name = name;
        Dimensions = options.Dimensions;
        Version = options.Version;
        var inference = options.Inference ?? new InferenceOptions();
        InferenceTimeout = inference.Timeout;
        MaxBatchSize = inference.MaxBatchSize;
        MaxConcurrency = inference.MaxConcurrency;
        HardTimeout = inference.EffectiveHardTimeout;
        WriteLateResults = inference.WriteLateResults;
        BatchWindow = inference.BatchWindow;
        MaxQueue = inference.MaxQueue;
        RunInline = inference.RunInline;
        CircuitBreaker = CircuitBreakerSettings.From(inference.CircuitBreaker ?? new CircuitBreakerOptions());
        Direct = TierPolicy.From(TierKind.Direct, options.Direct ?? new TierOptions());
        Failover = TierPolicy.From(TierKind.Failover, options.Failover ?? new TierOptions());
        var regional = options.Regional ?? new ModelRegionalOptions();
        RegionalEnabled = regional.Enabled;
        RegionalFormat = regional.Format ?? Failover.Format;
        var freshness = options.Freshness ?? new FreshnessOptions();
        DriftSampleRate = freshness.SampleRate;
        RefreshAhead = freshness.RefreshAhead;
        DefaultVector = options.DefaultVector is { } v ? new ReadOnlyMemory<float>((float[])v.Clone()) : (ReadOnlyMemory<float>?)null;
        if (options.Rollout is { NextVersion: { } next } rollout)
        {
            NextVersion = next;
            RolloutStart = rollout.Start;
            RolloutMaxConcurrency = rollout.MaxConcurrency ?? Math.Max(1, MaxConcurrency / 2);
            RolloutBatchSize = rollout.BatchSize ?? MaxBatchSize;
            SwitchAt = rollout.SwitchAt;
            SwitchOver = rollout.SwitchOver;

            // The next version's settings are this model's, under the next version's name (and with no rollout of its own).
            NextVersionPolicy = new ModelPolicy(name, new ModelOptions
            {
                Dimensions = options.Dimensions,
                Version = next,
                Inference = options.Inference!,
                Direct = options.Direct!,
                Failover = options.Failover!,
                Regional = options.Regional!,
                Freshness = options.Freshness!,
                DefaultVector = options.DefaultVector,
            });
        }
    }

    /// <summary>The version being warmed for a rollout, or <see langword="null"/>.</summary>
    public string? NextVersion { get; }

    /// <summary>The next version's settings while a rollout is configured.</summary>
    internal ModelPolicy? NextVersionPolicy { get; }

    /// <summary>When warming starts (wall clock), or null for at once.</summary>
    internal DateTimeOffset? RolloutStart { get; }

    /// <summary>When users start switching to the next version, or null.</summary>
    internal DateTimeOffset? SwitchAt { get; }

    /// <summary>How long the gradual switch takes.</summary>
    internal TimeSpan SwitchOver { get; }

    /// <summary>Most warming calls at once.</summary>
    internal int RolloutMaxConcurrency { get; }

    /// <summary>Users per warming call.</summary>
    internal int RolloutBatchSize { get; }

    /// <summary>The model name, as configured.</summary>
    public string Name { get; }

    /// <summary>Length of the model's vectors.</summary>
    public int Dimensions { get; }

    /// <summary>The model version; entries of any other version are invisible.</summary>
    public string Version { get; }

    /// <summary>How long a caller waits for inference.</summary>
    public TimeSpan InferenceTimeout { get; }

    /// <summary>Most users per delegate call.</summary>
    public int MaxBatchSize { get; }

    /// <summary>Most delegate calls in flight at once.</summary>
    public int MaxConcurrency { get; }

    /// <summary>When the delegate's token is cancelled and the call abandoned.</summary>
    public TimeSpan HardTimeout { get; }

    /// <summary>Whether a success after the deadline still refreshes the tiers.</summary>
    public bool WriteLateResults { get; }

    /// <summary>How long the first queued miss waits for others to fill its batch.</summary>
    public TimeSpan BatchWindow { get; }

    /// <summary>Most users waiting for a free delegate call.</summary>
    public int MaxQueue { get; }

    /// <summary>Whether a caller that finds a free slot starts the delegate on its own thread.</summary>
    public bool RunInline { get; }

    /// <summary>The circuit breaker settings (an immutable snapshot: equal settings compare equal).</summary>
    internal CircuitBreakerSettings CircuitBreaker { get; }

    /// <summary>The direct tier's settings.</summary>
    public TierPolicy Direct { get; }

    /// <summary>The failover tier's settings.</summary>
    public TierPolicy Failover { get; }

    /// <summary>The vector written on a fallback, or <see langword="null"/> to zero the destination.</summary>
    public ReadOnlyMemory<float>? DefaultVector { get; }

    /// <summary>Whether the model uses the regional tier when a regional store is registered.</summary>
    public bool RegionalEnabled { get; }

    /// <summary>The format the model's vectors take in the regional store.</summary>
    public StorageFormat RegionalFormat { get; }

    /// <summary>Share of direct hits sampled for drift on spare capacity (0 = off).</summary>
    public double DriftSampleRate { get; }

    /// <summary>Fraction of the direct TTL after which a hit queues a background refresh on spare capacity, or
    /// <see langword="null"/> when refresh ahead is off.</summary>
    public double? RefreshAhead { get; }

    /// <summary>Builds a policy from options that <c>ERCacheOptionsValidator</c> accepted.</summary>
    internal static ModelPolicy From(string name, ModelOptions options) => new(name, options);

    /// <summary>Whether cached vectors made under <paramref name="previous"/> are still valid under this policy.</summary>
    internal bool KeepsVectorsOf(ModelPolicy previous) =>
        previous.Dimensions == Dimensions && string.Equals(previous.Version, Version, StringComparison.Ordinal);
}
