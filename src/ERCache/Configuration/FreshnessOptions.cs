namespace ERCache;

/// <summary>
/// How a model spends spare inference capacity on freshness (<c>ERCache:Models:&lt;name&gt;:Freshness</c>). Both
/// features run only while the model has spare capacity (nothing queued and fewer than <c>Inference:MaxConcurrency</c>
/// calls running), in the background: they never change or delay a response. Both need the direct tier.
/// </summary>
public sealed class FreshnessOptions
{
    /// <summary>Share of direct hits, 0 to 1, for which fresh inference runs in the background to measure how far the
    /// served vector has drifted (1 − cosine similarity to the fresh one), recorded in the
    /// <c>ercache.staleness.drift</c> histogram by model and age bucket. The fresh vector is not cached. Default 0 (off).</summary>
    public double SampleRate { get; set; }

    /// <summary>Refresh ahead: a direct hit on an entry older than this fraction of <c>Direct:Ttl</c>, between 0 and 1
    /// (exclusive), is served and its user queued for a background refresh, so hot users stop paying an expiry miss.
    /// Default <see langword="null"/> (off).</summary>
    public double? RefreshAhead { get; set; }
}
