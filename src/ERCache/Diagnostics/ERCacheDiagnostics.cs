namespace ERCache.Diagnostics;

/// <summary>Names of ERCache's <see cref="System.Diagnostics.Metrics.Meter"/>, instruments and tags.</summary>
public static class ERCacheDiagnostics
{
    /// <summary>The meter name: <c>ERCache</c>.</summary>
    public const string MeterName = "ERCache";

    /// <summary>Counter of requests, one per user, tagged <c>model</c> and <c>source</c>.</summary>
    public const string Requests = "ercache.requests";

    /// <summary>Counter of inference delegate calls (batches), tagged <c>model</c>.</summary>
    public const string InferenceCalls = "ercache.inference.calls";

    /// <summary>Counter of users sent to inference, tagged <c>model</c>.</summary>
    public const string InferenceUsers = "ercache.inference.users";

    /// <summary>Counter of users whose inference failed, tagged <c>model</c> and <c>cause</c>.</summary>
    public const string InferenceFailures = "ercache.inference.failures";

    /// <summary>Counter of entries evicted to make room, tagged <c>model</c> and <c>tier</c>.</summary>
    public const string Evictions = "ercache.evictions";

    /// <summary>Observable gauge of entries held, tagged <c>model</c> and <c>tier</c>.</summary>
    public const string Entries = "ercache.entries";

    /// <summary>Histogram of the age, in seconds, of served vectors, tagged <c>model</c> and <c>source</c>
    /// (Direct, Fresh and Failover; a fallback serves no vector).</summary>
    public const string VectorAge = "ercache.vector.age";

    /// <summary>Tag: the model name.</summary>
    public const string ModelTag = "model";

    /// <summary>Tag: <c>direct</c> or <c>failover</c>.</summary>
    public const string TierTag = "tier";

    /// <summary>Tag: <c>direct</c>, <c>fresh</c>, <c>failover</c> or <c>fallback</c>.</summary>
    public const string SourceTag = "source";

    /// <summary>Tag: the <see cref="InferenceFailureCause"/> in lower case (<c>error</c>, <c>timeout</c>, ...).</summary>
    public const string CauseTag = "cause";
}
