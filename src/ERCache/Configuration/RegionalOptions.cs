namespace ERCache;

/// <summary>
/// The regional tier (<c>ERCache:Regional</c>): a store shared by the hosts of a region, used when one is registered
/// (for Redis or Garnet, <c>AddRedisRegionalTier()</c> from the <c>ERCache.Redis</c> package). Each model can opt out
/// with <see cref="ModelRegionalOptions.Enabled"/>.
/// </summary>
/// <remarks>A configuration reload applies <see cref="Timeout"/>, <see cref="WriteTimeout"/>, <see cref="MaxBatchSize"/>,
/// <see cref="QueueCapacity"/>, <see cref="MaxClockSkew"/>, <see cref="FlushInterval"/> and <see cref="CircuitBreaker"/>
/// to the store calls that start after it; <see cref="ConnectionString"/>, <see cref="KeyPrefix"/> and
/// <see cref="Invalidation"/> are read once, when the cache is built, and a reload that changes one is logged.</remarks>
public sealed class RegionalOptions
{
    /// <summary>The store's connection string, read by the store's package (for Redis or Garnet,
    /// <c>127.0.0.1:6379</c>, or any StackExchange.Redis configuration string). Default: none.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The namespace of this cache's keys and channel in the store, read by the store's package (for Redis or
    /// Garnet: keys <c>&lt;prefix&gt;:{&lt;user&gt;}</c>, channel <c>&lt;prefix&gt;:invalidation</c>). Hosts share
    /// vectors only under the same prefix: give services that share a store but must not share vectors different ones.
    /// Default: <c>ercache:&lt;application name&gt;</c> through dependency injection, <c>ercache</c> otherwise. Up to
    /// 100 characters, without braces (they would break Redis Cluster hash tags).</summary>
    public string? KeyPrefix { get; set; }

    /// <summary>How far in the future a regional value's write stamp may be (hosts' clocks differ) and still be served,
    /// with age zero; a value stamped later is never served (counted as <c>future</c> in
    /// <c>ercache.regional.reads</c>). Default 1 s; at most 1 hour.</summary>
    public TimeSpan MaxClockSkew { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest a request waits for a regional lookup (never past its own inference deadline); then the
    /// lookup counts as a miss. Default 5 ms; at most 1 minute.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>The longest one grouped write may take before it is abandoned (its values dropped and counted).
    /// Default 1 s; at most 1 minute.</summary>
    public TimeSpan WriteTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Most fresh values waiting to be written; beyond it a value is dropped and counted, never blocking a
    /// request. Default 100,000; 1..10,000,000.</summary>
    public int QueueCapacity { get; set; } = 100_000;

    /// <summary>How often waiting values are written. Default 10 ms; positive, at most 1 minute.</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Most users per grouped write and per lookup round trip (a larger lookup is split, its round trips
    /// sent at once and each bounded by <see cref="Timeout"/>). Default 512; 1..65,536.</summary>
    public int MaxBatchSize { get; set; } = 512;

    /// <summary>Whether this host announces its removals, pushes and clears to the other hosts and applies theirs, over
    /// the store's channel (Redis or Garnet pub/sub), when the store offers one. Default <see langword="true"/>.</summary>
    public bool Invalidation { get; set; } = true;

    /// <summary>Stops calling a failing store for a while, so a dead store costs a request almost nothing. Failures
    /// are calls that throw or pass their timeout.</summary>
    public CircuitBreakerOptions CircuitBreaker { get; set; } = new() { MinimumThroughput = 10 };
}
