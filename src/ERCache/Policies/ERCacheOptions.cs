namespace ERCache.Policies;

/// <summary>
/// The <c>ERCache</c> configuration section: one entry per model under <c>Models</c>.
/// </summary>
public sealed class ERCacheOptions
{
    /// <summary>The default configuration section path, <c>ERCache</c>.</summary>
    public const string DefaultSectionPath = "ERCache";

    /// <summary>Per-model settings, keyed by model name (case-insensitive, like configuration keys).</summary>
    public Dictionary<string, ModelOptions> Models { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>The settings of one model (<c>ERCache:Models:&lt;name&gt;</c>).</summary>
public sealed class ModelOptions
{
    /// <summary>Length of the model's embedding vectors, 1..16384. Required.</summary>
    public int Dimensions { get; set; }

    /// <summary>The model version. Changing it makes every cached vector of the model invisible
    /// (the model's tiers are dropped). Default <c>"1"</c>.</summary>
    public string Version { get; set; } = "1";

    /// <summary>How inference is called for the model.</summary>
    public InferenceOptions Inference { get; set; } = new();

    /// <summary>The direct tier: served without inference while younger than its TTL.</summary>
    public TierOptions Direct { get; set; } = new() { Eviction = "Lru" };

    /// <summary>The failover tier: served only when inference fails, while younger than its (longer) TTL.</summary>
    public TierOptions Failover { get; set; } = new() { Eviction = "Fifo" };

    /// <summary>Optional vector written to the destination on a fallback (length must equal
    /// <see cref="Dimensions"/>, every value finite). When absent, a fallback zeroes the destination.</summary>
    public float[]? DefaultVector { get; set; }
}

/// <summary>How a model's inference delegate is called (<c>ERCache:Models:&lt;name&gt;:Inference</c>).</summary>
public sealed class InferenceOptions
{
    /// <summary>The default <see cref="Timeout"/>: 100 ms.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a caller waits for inference before it is treated as failed
    /// (<see cref="InferenceFailureCause.Timeout"/>). Default 100 ms.</summary>
    public TimeSpan Timeout { get; set; } = DefaultTimeout;

    /// <summary>Most users sent to the delegate in one call. Default 64.</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>Most delegate calls in flight at once for this model. Default 8.
    /// Validated now; enforced with overload shedding in a later release.</summary>
    public int MaxConcurrency { get; set; } = 8;
}

/// <summary>One tier of a model (<c>Direct</c> or <c>Failover</c>).</summary>
public sealed class TierOptions
{
    /// <summary>Default <see cref="Capacity"/>: 100,000 entries.</summary>
    public const int DefaultCapacity = 100_000;

    /// <summary>Whether the tier exists. Default <see langword="true"/>.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Entries younger than this are valid (an entry exactly this old is expired). Required when enabled.</summary>
    public TimeSpan Ttl { get; set; }

    /// <summary>Most entries the tier holds. Default 100,000.</summary>
    public int Capacity { get; set; } = DefaultCapacity;

    /// <summary>Eviction strategy name: <c>Lru</c>, <c>Fifo</c> or <c>MemoryCache</c>.
    /// Default <c>Lru</c> for the direct tier and <c>Fifo</c> for the failover tier.</summary>
    public string Eviction { get; set; } = nameof(EvictionStrategy.Lru);

    /// <summary>Storage format name: <c>Float32</c>. Default <c>Float32</c>.</summary>
    public string Format { get; set; } = nameof(StorageFormat.Float32);
}
