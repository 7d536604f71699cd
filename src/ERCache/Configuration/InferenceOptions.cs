namespace ERCache;

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

    /// <summary>The effective hard timeout: ten times <see cref="Timeout"/> when not set, at most the longest timer.</summary>
    internal TimeSpan EffectiveHardTimeout =>
        HardTimeout ?? (Timeout <= ERCacheLimits.MaxInferenceTimeout / 10 ? Timeout * 10 : ERCacheLimits.MaxInferenceTimeout);
}
