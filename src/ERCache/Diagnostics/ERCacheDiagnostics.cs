namespace ERCache.Diagnostics;

/// <summary>Names of ERCache's <see cref="System.Diagnostics.Metrics.Meter"/>, instruments and tags.</summary>
public static class ERCacheDiagnostics
{
    /// <summary>The meter name: <c>ERCache</c>.</summary>
    public const string MeterName = "ERCache";

    /// <summary>The activity source name (spans of delegate calls and regional round trips): <c>ERCache</c>.</summary>
    public const string ActivitySourceName = "ERCache";

    /// <summary>The span of one inference delegate call, tagged model, batch size and outcome.</summary>
    public const string InferenceActivity = "ercache.inference";

    /// <summary>The span of one regional store round trip, tagged operation, batch size and outcome.</summary>
    public const string RegionalActivity = "ercache.regional";

    /// <summary>Span tag: users in the call or round trip.</summary>
    public const string BatchSizeTag = "batch_size";

    /// <summary>Meter tag that tells the meters of two caches in one process apart (a number, unique per cache).</summary>
    public const string CacheTag = "ercache.cache";

    /// <summary>Counter of requests, one per user, tagged <c>model</c> and <c>source</c>.</summary>
    public const string Requests = "ercache.requests";

    /// <summary>Counter of inference delegate calls (batches), tagged <c>model</c>.</summary>
    public const string InferenceCalls = "ercache.inference.calls";

    /// <summary>Counter of users sent to inference, tagged <c>model</c>.</summary>
    public const string InferenceUsers = "ercache.inference.users";

    /// <summary>Counter of requests (one per user) whose inference failed, tagged <c>model</c> and <c>cause</c>.</summary>
    public const string InferenceFailures = "ercache.inference.failures";

    /// <summary>Counter of entries evicted to make room, tagged <c>model</c>, <c>tier</c> and <c>reason</c>
    /// (<c>expired</c> when the entry had outlived its TTL, <c>capacity</c> when a live entry was chosen).</summary>
    public const string Evictions = "ercache.evictions";

    /// <summary>Observable gauge of entries held, tagged <c>model</c> and <c>tier</c>.</summary>
    public const string Entries = "ercache.entries";

    /// <summary>Observable gauge of bytes a tier has allocated (slabs, index, eviction bookkeeping), tagged
    /// <c>model</c> and <c>tier</c>.</summary>
    public const string TierBytes = "ercache.tier.bytes";

    /// <summary>Histogram of the age, in seconds, of served vectors, tagged <c>model</c> and <c>source</c>
    /// (Direct, Fresh and Failover; a fallback serves no vector).</summary>
    public const string VectorAge = "ercache.vector.age";

    /// <summary>Histogram of delegate call durations, in seconds, tagged <c>model</c> and <c>cause</c>
    /// (<c>none</c> for a call that completed).</summary>
    public const string InferenceDuration = "ercache.inference.duration";

    /// <summary>Histogram of users per delegate call, tagged <c>model</c>.</summary>
    public const string InferenceBatchSize = "ercache.inference.batch_size";

    /// <summary>Observable gauge of delegate calls in flight, tagged <c>model</c>.</summary>
    public const string InferenceInFlight = "ercache.inference.in_flight";

    /// <summary>Counter of misses that joined an inference already pending for the same user, tagged <c>model</c>.</summary>
    public const string InferenceCoalesced = "ercache.inference.coalesced";

    /// <summary>Counter of misses shed without inference (queue full, or it could not start before its deadline), tagged <c>model</c>.</summary>
    public const string InferenceShed = "ercache.inference.shed";

    /// <summary>Observable gauge of each model's circuit breaker: 0 closed, 1 open, 2 half-open, 3 isolated; tagged <c>model</c>.</summary>
    public const string CircuitState = "ercache.circuit.state";

    /// <summary>Counter of users looked up in the regional store, tagged <c>model</c> and <c>outcome</c>: <c>hit</c>
    /// (younger than the direct TTL), <c>stale</c> (kept only for failover), <c>miss</c>, <c>decode_failure</c> (a value
    /// that did not decode exactly: never served), <c>future</c> (stamped later than now plus <c>Regional:MaxClockSkew</c>:
    /// never served) or <c>unavailable</c> (the store did not answer in time).</summary>
    public const string RegionalReads = "ercache.regional.reads";

    /// <summary>Counter of regional store calls that failed, tagged <c>operation</c> (<c>read</c>, <c>write</c>) and
    /// <c>reason</c> (<c>timeout</c>, <c>error</c>, <c>circuit_open</c>).</summary>
    public const string RegionalFailures = "ercache.regional.failures";

    /// <summary>Counter of grouped writes sent to the regional store (one per user per flush).</summary>
    public const string RegionalWriteGroups = "ercache.regional.write.groups";

    /// <summary>Counter of values written to the regional store (one per user and model).</summary>
    public const string RegionalWriteValues = "ercache.regional.write.values";

    /// <summary>Counter of fresh values not written to the regional store, tagged <c>reason</c>: <c>queue_full</c>,
    /// <c>disposed</c> (the cache was disposed), or the failed write's <c>timeout</c>, <c>error</c> or <c>circuit_open</c>.</summary>
    public const string RegionalWritesDropped = "ercache.regional.write.dropped";

    /// <summary>Observable gauge of values waiting to be written to the regional store.</summary>
    public const string RegionalQueueLength = "ercache.regional.queue.length";

    /// <summary>Histogram of regional store round trips, in seconds, tagged <c>operation</c> (<c>read</c>, <c>write</c>).</summary>
    public const string RegionalDuration = "ercache.regional.duration";

    /// <summary>Counter of invalidation messages (removals, pushes, clears announced between hosts), tagged
    /// <see cref="DirectionTag"/>: <c>sent</c>, <c>received</c> (from other hosts), <c>applied</c>, <c>undecodable</c>,
    /// <c>failed</c> (not sent).</summary>
    public const string InvalidationMessages = "ercache.invalidation.messages";

    /// <summary>Histogram of seconds from a message's stamp (when the operation was asked for on its host) to its
    /// application here.</summary>
    public const string InvalidationLag = "ercache.invalidation.lag";

    /// <summary>The direction tag of <see cref="InvalidationMessages"/>.</summary>
    public const string DirectionTag = "direction";

    /// <summary>Histogram of the drift of sampled direct hits (<c>Freshness:SampleRate</c>): 1 − cosine similarity
    /// between the vector served and a fresh inference run in the background, tagged <c>model</c> and <c>age</c> (the
    /// served vector's age bucket: <c>lt_30s</c>, <c>30s_1m</c>, <c>1m_5m</c>, <c>5m_10m</c>, <c>10m_30m</c>,
    /// <c>30m_1h</c>, <c>ge_1h</c>).</summary>
    public const string StalenessDrift = "ercache.staleness.drift";

    /// <summary>Counter of users sent to inference in the background on spare capacity, tagged <c>model</c> and
    /// <c>kind</c> (<c>refresh</c>: refresh ahead; <c>drift_sample</c>: drift sampling; <c>rollout</c>: warming a rollout's next version). They are counted in
    /// <see cref="InferenceUsers"/> too; request-path inference is the difference.</summary>
    public const string BackgroundInferences = "ercache.inference.background";

    /// <summary>Tag on <see cref="StalenessDrift"/>: the served vector's age bucket.</summary>
    public const string AgeTag = "age";

    /// <summary>Observable gauge: a rollout's warm share, by model and tier (<c>direct</c>: the next version holds a
    /// vector younger than the direct TTL; <c>failover</c>: younger than the failover TTL), of the users resident in the
    /// current version's tiers.</summary>
    public const string RolloutWarmShare = "ercache.rollout.warm_share";

    /// <summary>Tag on <see cref="BackgroundInferences"/>: <c>refresh</c>, <c>drift_sample</c> or <c>rollout</c>.</summary>
    public const string KindTag = "kind";

    /// <summary>Tag: the model name.</summary>
    public const string ModelTag = "model";

    /// <summary>Tag: <c>direct</c> or <c>failover</c>.</summary>
    public const string TierTag = "tier";

    /// <summary>Tag: <c>direct</c>, <c>regional</c>, <c>fresh</c>, <c>failover</c> or <c>fallback</c>.</summary>
    public const string SourceTag = "source";

    /// <summary>Tag: the <see cref="InferenceFailureCause"/> in lower case (<c>error</c>, <c>timeout</c>, ...).</summary>
    public const string CauseTag = "cause";

    /// <summary>Tag on <see cref="Evictions"/>: <c>expired</c> or <c>capacity</c>; on regional failures and drops, why.</summary>
    public const string ReasonTag = "reason";

    /// <summary>Tag on regional instruments: <c>read</c> or <c>write</c>.</summary>
    public const string OperationTag = "operation";

    /// <summary>Tag on <see cref="RegionalReads"/> (what the lookup found for the user), and on spans: <c>none</c>,
    /// or the failure (a cause such as <c>timeout</c>, or a regional failure reason).</summary>
    public const string OutcomeTag = "outcome";
}
