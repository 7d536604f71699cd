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

    /// <summary>The deadline: how long a caller waits for inference before it is answered from the failover tier
    /// or as a fallback (<see cref="InferenceFailureCause.Timeout"/>, or <see cref="InferenceFailureCause.Overload"/>
    /// when the inference never started). Default 100 ms.</summary>
    public TimeSpan Timeout { get; set; } = DefaultTimeout;

    /// <summary>When the delegate's cancellation token is cancelled and the call abandoned. Must be at least
    /// <see cref="Timeout"/>. Default: ten times <see cref="Timeout"/>.</summary>
    public TimeSpan? HardTimeout { get; set; }

    /// <summary>Whether an inference that succeeds after the callers' deadline still refreshes both tiers.
    /// Default <see langword="true"/>.</summary>
    public bool WriteLateResults { get; set; } = true;

    /// <summary>Most users sent to the delegate in one call. Default 64.</summary>
    public int MaxBatchSize { get; set; } = 64;

    /// <summary>How long the first queued miss waits for others to fill its batch. Default zero: only misses
    /// already waiting are batched together.</summary>
    public TimeSpan BatchWindow { get; set; }

    /// <summary>Most delegate calls in flight at once for this model. Default 8.</summary>
    public int MaxConcurrency { get; set; } = 8;

    /// <summary>Most users waiting for a free delegate call; a miss beyond it is shed at once
    /// (<see cref="InferenceFailureCause.Overload"/>). Default 4096.</summary>
    public int MaxQueue { get; set; } = 4096;

    /// <summary>Whether a miss that finds a free delegate slot starts the delegate on the caller's own thread instead
    /// of the thread pool, saving a thread hop per batch. Only the delegate's synchronous part runs inline, and the
    /// caller cannot give up on it before it returns: leave this off (the default) unless the delegate is
    /// asynchronous or reliably much faster than <see cref="Timeout"/>. Default <see langword="false"/>.</summary>
    public bool RunInline { get; set; }

    /// <summary>The model's circuit breaker.</summary>
    public CircuitBreakerOptions CircuitBreaker { get; set; } = new();

    /// <summary>The effective hard timeout.</summary>
    internal TimeSpan EffectiveHardTimeout => HardTimeout ?? (Timeout * 10);
}

/// <summary>
/// Stops calling a failing model for a while (<c>ERCache:Models:&lt;name&gt;:Inference:CircuitBreaker</c>): when
/// at least <see cref="FailureRatio"/> of the delegate calls in <see cref="SamplingDuration"/> fail (and there were
/// at least <see cref="MinimumThroughput"/>), the circuit opens for <see cref="BreakDuration"/>; requests are then
/// answered from the failover tier or as a fallback (<see cref="InferenceFailureCause.CircuitOpen"/>). After the
/// break one probe call is let through: success closes the circuit, failure opens it again.
/// </summary>
public sealed class CircuitBreakerOptions
{
    /// <summary>Whether the breaker is on. Default <see langword="true"/>.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Share of failed delegate calls that opens the circuit, in (0, 1]. Default 0.5.</summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>Fewest delegate calls in a sampling window before the ratio counts; at least 2. Default 20.</summary>
    public int MinimumThroughput { get; set; } = 20;

    /// <summary>The window failures are counted over; at least 500 ms. Default 10 s.</summary>
    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the circuit stays open before a probe; at least 500 ms. Default 5 s.</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(5);
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

    /// <summary>Most entries the tier holds, 1..268,435,455. Default 100,000.</summary>
    public int Capacity { get; set; } = DefaultCapacity;

    /// <summary>Optional bound on the bytes the tier holds when full (slabs, index and eviction bookkeeping); the tier
    /// then holds fewer than <see cref="Capacity"/> entries if that many would not fit. Not supported with
    /// <c>MemoryCache</c> eviction. Default: none.</summary>
    public long? MaxBytes { get; set; }

    /// <summary>Eviction strategy name: <c>Lru</c>, <c>Fifo</c>, <c>Sieve</c> or <c>MemoryCache</c>.
    /// Default <c>Lru</c> for the direct tier and <c>Fifo</c> for the failover tier.</summary>
    public string Eviction { get; set; } = nameof(EvictionStrategy.Lru);

    /// <summary>Storage format name: <c>Float32</c>, <c>Float16</c> or <c>Int8</c>. Default <c>Float32</c>.</summary>
    public string Format { get; set; } = nameof(StorageFormat.Float32);
}
