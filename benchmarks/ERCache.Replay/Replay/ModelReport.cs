namespace ERCache.Replay.Replay;

/// <summary>What one model (or the total) saw in a replay.</summary>
internal sealed class ModelReport
{
    public long Requests { get; set; }

    public long DirectHits { get; set; }

    /// <summary>Requests served from the regional store (another host's inference, younger than the direct TTL).</summary>
    public long RegionalHits { get; set; }

    public long FreshResults { get; set; }

    /// <summary>Users sent to the inference delegate (every attempt, one per request that reached it).</summary>
    public long Inferences { get; set; }

    /// <summary>Of <see cref="Inferences"/>, the attempts that failed.</summary>
    public long InferenceFailures { get; set; }

    public long FailoverHits { get; set; }

    /// <summary>Of <see cref="Inferences"/>, those run in the background by refresh ahead (request-path inferences are the
    /// difference).</summary>
    public long Refreshes { get; set; }

    /// <summary>Drift of served vectors against fresh inference at the same moment (with <c>--drift</c> only).</summary>
    public DriftStatistics Drift { get; } = new();

    public long Fallbacks { get; set; }

    /// <summary>Requests whose trace row says inference fails: the fallbacks a service without a cache would have.</summary>
    public long FailingRequests { get; set; }

    public AgeHistogram DirectAges { get; } = new();

    public AgeHistogram RegionalAges { get; } = new();

    public AgeHistogram FreshAges { get; } = new();

    public AgeHistogram FailoverAges { get; } = new();

    public TierPeak Direct { get; } = new();

    public TierPeak Failover { get; } = new();

    /// <summary>Ages of every served vector: the per-source histograms merged (computed on demand, not recorded twice).</summary>
    public AgeHistogram AllAges()
    {
        var all = new AgeHistogram();
        all.Add(DirectAges);
        all.Add(RegionalAges);
        all.Add(FreshAges);
        all.Add(FailoverAges);
        return all;
    }

    /// <summary>Inference saved, as a share of requests: requests that ran no inference (direct hits, and regional hits
    /// whose inference another host already ran), less the inferences refresh ahead ran in the background for them.</summary>
    public double ComputeSaved => Requests == 0 ? 0 : (double)(DirectHits + RegionalHits - Refreshes) / Requests;

    /// <summary>Inferences on the request path: every inference but the background refreshes.</summary>
    public long RequestPathInferences => Inferences - Refreshes;

    public double FallbackRate => Requests == 0 ? 0 : (double)Fallbacks / Requests;

    public double FallbackRateWithoutCache => Requests == 0 ? 0 : (double)FailingRequests / Requests;

    public void Add(ModelReport other)
    {
        Requests += other.Requests;
        DirectHits += other.DirectHits;
        RegionalHits += other.RegionalHits;
        FreshResults += other.FreshResults;
        Inferences += other.Inferences;
        InferenceFailures += other.InferenceFailures;
        FailoverHits += other.FailoverHits;
        Refreshes += other.Refreshes;
        Drift.Add(other.Drift);
        Fallbacks += other.Fallbacks;
        FailingRequests += other.FailingRequests;
        DirectAges.Add(other.DirectAges);
        RegionalAges.Add(other.RegionalAges);
        FreshAges.Add(other.FreshAges);
        FailoverAges.Add(other.FailoverAges);
        Direct.Add(other.Direct);
        Failover.Add(other.Failover);
    }
}

/// <summary>Peak entries and bytes of one tier (summed over hosts and models when added).</summary>
internal sealed class TierPeak
{
    public long PeakEntries { get; private set; }

    public long PeakBytes { get; private set; }

    public void Observe(TierStatistics? statistics)
    {
        if (statistics is { } s)
        {
            PeakEntries = Math.Max(PeakEntries, s.Count);
            PeakBytes = Math.Max(PeakBytes, s.AllocatedBytes);
        }
    }

    public void Add(TierPeak other)
    {
        PeakEntries += other.PeakEntries;
        PeakBytes += other.PeakBytes;
    }
}
