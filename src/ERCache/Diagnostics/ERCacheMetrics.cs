using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ERCache.Diagnostics;

/// <summary>
/// The instruments of one cache instance. Tags are bounded: model, tier, source and cause, never a user id.
/// Tag values are interned strings, so recording allocates nothing.
/// </summary>
internal sealed class ERCacheMetrics : IDisposable
{
    private static readonly string[] SourceNames = ["fallback", "direct", "fresh", "failover", "regional"];
    private static readonly string[] CauseNames = ["none", "error", "timeout", "invalid_vector", "overload", "circuit_open"];

    private readonly bool _ownsMeter;
    private readonly Counter<long> _inferenceCalls;
    private readonly Counter<long> _inferenceUsers;
    private readonly Counter<long> _inferenceFailures;
    private readonly Counter<long> _evictions;
    private readonly Histogram<double> _age;
    private readonly Histogram<double> _duration;
    private readonly Histogram<int> _batchSize;
    private readonly Counter<long> _coalesced;
    private readonly Counter<long> _shed;
    private readonly Counter<long> _regionalReads;
    private readonly Counter<long> _regionalFailures;
    private readonly Counter<long> _regionalGroups;
    private readonly Counter<long> _regionalValues;
    private readonly Counter<long> _regionalDropped;
    private readonly Histogram<double> _regionalDuration;
    private readonly Counter<long> _invalidations;
    private readonly Histogram<double> _invalidationLag;
    private readonly Histogram<double> _drift;
    private readonly Counter<long> _background;
    private Func<IEnumerable<Measurement<long>>>? _observeRequests;
    private Func<IEnumerable<Measurement<int>>>? _observeRegionalQueue;
    private Func<IEnumerable<Measurement<long>>>? _observeEntries;
    private Func<IEnumerable<Measurement<long>>>? _observeBytes;
    private Func<IEnumerable<Measurement<int>>>? _observeInFlight;
    private Func<IEnumerable<Measurement<int>>>? _observeCircuits;
    private Func<IEnumerable<Measurement<double>>>? _observeRollouts;

    private static int s_instances;

    public ERCacheMetrics(IMeterFactory? meterFactory, string meterName = ERCacheDiagnostics.MeterName)
    {
        // Each cache gets its own meter, told apart by the ercache.cache tag: a factory hands out one shared meter per
        // name and tags, and a disposed cache's gauges must not keep reporting through a meter another cache uses.
        Instance = Interlocked.Increment(ref s_instances).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var options = new MeterOptions(meterName) { Tags = [new(ERCacheDiagnostics.CacheTag, Instance)] };
        if (meterFactory is null)
        {
            Meter = new Meter(options);
            _ownsMeter = true;
        }        else
        {
            Meter = meterFactory.Create(options);
        }

        // Read from the models' striped counts when a listener collects, not measured per request: under OpenTelemetry's
        // SDK a measurement per hit cost it 33–37 ns (docs/benchmarks.md).
        Meter.CreateObservableCounter(
            ERCacheDiagnostics.Requests, () => _observeRequests?.Invoke() ?? [], "{request}", "Embedding requests, one per user, by source.");
        _inferenceCalls = Meter.CreateCounter<long>(ERCacheDiagnostics.InferenceCalls, "{call}", "Inference delegate calls.");
        _inferenceUsers = Meter.CreateCounter<long>(ERCacheDiagnostics.InferenceUsers, "{user}", "Users sent to inference.");
        _inferenceFailures = Meter.CreateCounter<long>(ERCacheDiagnostics.InferenceFailures, "{user}", "Users whose inference failed, by cause.");
        _evictions = Meter.CreateCounter<long>(ERCacheDiagnostics.Evictions, "{entry}", "Entries evicted to make room.");
        _age = Meter.CreateHistogram<double>(ERCacheDiagnostics.VectorAge, "s", "Age of served vectors, by source.", tags: null, Advice(HistogramBuckets.Ages));
        Meter.CreateObservableGauge(ERCacheDiagnostics.Entries, () => _observeEntries?.Invoke() ?? [], "{entry}", "Entries held per tier.");
        Meter.CreateObservableGauge(ERCacheDiagnostics.TierBytes, () => _observeBytes?.Invoke() ?? [], "By", "Bytes allocated per tier.");
        _duration = Meter.CreateHistogram<double>(ERCacheDiagnostics.InferenceDuration, "s", "Duration of inference delegate calls.", tags: null, Advice(HistogramBuckets.Seconds));
        _batchSize = Meter.CreateHistogram<int>(ERCacheDiagnostics.InferenceBatchSize, "{user}", "Users per inference delegate call.", tags: null, Advice(HistogramBuckets.BatchSizes));
        _coalesced = Meter.CreateCounter<long>(ERCacheDiagnostics.InferenceCoalesced, "{request}", "Misses that joined a pending inference for the same user.");
        _shed = Meter.CreateCounter<long>(ERCacheDiagnostics.InferenceShed, "{request}", "Misses shed without inference because the model was overloaded.");
        Meter.CreateObservableGauge(ERCacheDiagnostics.InferenceInFlight, () => _observeInFlight?.Invoke() ?? [], "{call}", "Inference delegate calls in flight.");
        _regionalReads = Meter.CreateCounter<long>(ERCacheDiagnostics.RegionalReads, "{user}", "Users looked up in the regional store, by outcome.");
        _regionalFailures = Meter.CreateCounter<long>(ERCacheDiagnostics.RegionalFailures, "{call}", "Regional store calls that failed, by operation and reason.");
        _regionalGroups = Meter.CreateCounter<long>(ERCacheDiagnostics.RegionalWriteGroups, "{write}", "Grouped writes (one per user per flush) sent to the regional store.");
        _regionalValues = Meter.CreateCounter<long>(ERCacheDiagnostics.RegionalWriteValues, "{value}", "Values written to the regional store.");
        _regionalDropped = Meter.CreateCounter<long>(ERCacheDiagnostics.RegionalWritesDropped, "{value}", "Fresh values not written to the regional store, by reason.");
        _regionalDuration = Meter.CreateHistogram<double>(ERCacheDiagnostics.RegionalDuration, "s", "Regional store round trips.", tags: null, Advice(HistogramBuckets.Seconds));
        _invalidations = Meter.CreateCounter<long>(ERCacheDiagnostics.InvalidationMessages, "{message}", "Invalidation messages between hosts, by direction.");
        _invalidationLag = Meter.CreateHistogram<double>(ERCacheDiagnostics.InvalidationLag, "s", "From an invalidation's stamp on its host to its application here.", tags: null, Advice(HistogramBuckets.Seconds));
        Meter.CreateObservableGauge(ERCacheDiagnostics.RegionalQueueLength, () => _observeRegionalQueue?.Invoke() ?? [], "{value}", "Values waiting to be written to the regional store.");
        _drift = Meter.CreateHistogram<double>(ERCacheDiagnostics.StalenessDrift, "1", "Drift of sampled direct hits (1 - cosine similarity to a fresh inference), by age bucket.", tags: null, Advice(HistogramBuckets.Drift));
        _background = Meter.CreateCounter<long>(ERCacheDiagnostics.BackgroundInferences, "{user}", "Users sent to inference in the background on spare capacity, by kind.");
        Meter.CreateObservableGauge(
            ERCacheDiagnostics.RolloutWarmShare, () => _observeRollouts?.Invoke() ?? [], "1",
            "Share of the users resident in the current version's tiers for whom the next version holds a vector young enough for the tier, by model and tier (measured at each warming pass).");
        Meter.CreateObservableGauge(ERCacheDiagnostics.CircuitState, () => _observeCircuits?.Invoke() ?? [], "{state}", "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 isolated.");
    }

    /// <summary>The meter all instruments hang off.</summary>
    public Meter Meter { get; }

    /// <summary>This cache's value of the <see cref="ERCacheDiagnostics.CacheTag"/> meter tag.</summary>
    public string Instance { get; }

    public static string SourceName(EmbeddingSource source) => SourceNames[(int)source];

    public static string CauseName(InferenceFailureCause cause) => CauseNames[(int)cause];

    public static string TierName(TierKind kind) => kind == TierKind.Direct ? "direct" : "failover";

    public static TagList TierTags(string model, TierKind tier) =>
        new() { { ERCacheDiagnostics.ModelTag, model }, { ERCacheDiagnostics.TierTag, TierName(tier) } };

    /// <summary>Connects the entries and bytes gauges to the live set of tiers.</summary>
    public void ObserveTiers(Func<IEnumerable<Measurement<long>>> entries, Func<IEnumerable<Measurement<long>>> bytes)
    {
        _observeEntries = entries;
        _observeBytes = bytes;
    }

    /// <summary>Connects the requests counter to the models' result counts (cumulative, one measurement per model and
    /// source).</summary>
    public void ObserveResults(Func<IEnumerable<Measurement<long>>> requests) => _observeRequests = requests;

    /// <summary>The tags of the requests counter and the age histogram.</summary>
    public static TagList ResultTags(string model, EmbeddingSource source) =>
        new() { { ERCacheDiagnostics.ModelTag, model }, { ERCacheDiagnostics.SourceTag, SourceNames[(int)source] } };

    /// <summary>Connects the in-flight and circuit-state gauges to the live schedulers.</summary>
    public void ObserveSchedulers(Func<IEnumerable<Measurement<int>>> inFlight, Func<IEnumerable<Measurement<int>>> circuits)
    {
        _observeInFlight = inFlight;
        _observeCircuits = circuits;
    }

    public static TagList ModelTags(string model) => new() { { ERCacheDiagnostics.ModelTag, model } };

    /// <summary>Connects the regional queue-length gauge.</summary>
    public void ObserveRegionalQueue(Func<int> length) =>
        _observeRegionalQueue = () => [new Measurement<int>(length())];

    public void RecordRegionalReads(string model, string outcome, int users)
    {
        if (users > 0)
        {
            _regionalReads.Add(users, new TagList { { ERCacheDiagnostics.ModelTag, model }, { ERCacheDiagnostics.OutcomeTag, outcome } });
        }
    }

    public void RecordRegionalFailure(string operation, string reason) =>
        _regionalFailures.Add(1, new TagList { { ERCacheDiagnostics.OperationTag, operation }, { ERCacheDiagnostics.ReasonTag, reason } });

    public void RecordRegionalWrite(int groups, int values)
    {
        _regionalGroups.Add(groups);
        _regionalValues.Add(values);
    }

    public void RecordRegionalDropped(string reason, int values)
    {
        if (values > 0)
        {
            _regionalDropped.Add(values, new TagList { { ERCacheDiagnostics.ReasonTag, reason } });
        }
    }

    public void RecordInvalidation(string direction) =>
        _invalidations.Add(1, new TagList { { ERCacheDiagnostics.DirectionTag, direction } });

    public void RecordInvalidationLag(TimeSpan lag) => _invalidationLag.Record(Math.Max(0, lag.TotalSeconds));

    public void RecordRegionalDuration(string operation, TimeSpan duration) =>
        _regionalDuration.Record(duration.TotalSeconds, new TagList { { ERCacheDiagnostics.OperationTag, operation } });

    public void RecordCoalesced(string model, int count)
    {
        if (count > 0 && _coalesced.Enabled)
        {
            _coalesced.Add(count, ModelTags(model));
        }
    }

    public void RecordShed(string model, int count)
    {
        if (count > 0)
        {
            _shed.Add(count, ModelTags(model));
        }
    }

    public void RecordInferenceDuration(string model, TimeSpan duration, InferenceFailureCause cause)
    {
        if (_duration.Enabled)
        {
            _duration.Record(duration.TotalSeconds, new TagList
            {
                { ERCacheDiagnostics.ModelTag, model },
                { ERCacheDiagnostics.CauseTag, CauseNames[(int)cause] },
            });
        }
    }

    /// <summary>Whether a listener takes the age of each result (<see cref="RecordAge"/> does nothing otherwise). The
    /// only measurement taken per result: the requests counter is read from the models' counts.</summary>
    public bool AgesEnabled => _age.Enabled;

    /// <summary>The age of a served vector (a fallback has none).</summary>
    public void RecordAge(string model, in EmbeddingResult result)
    {
        if (result.Source != EmbeddingSource.Fallback && _age.Enabled)
        {
            _age.Record(result.Age.TotalSeconds, ResultTags(model, result.Source));
        }
    }

    public void RecordInferenceCall(string model, int users)
    {
        if (!_inferenceCalls.Enabled && !_inferenceUsers.Enabled && !_batchSize.Enabled)
        {
            return; // nobody listens: not even the tag list
        }

        var tags = new TagList { { ERCacheDiagnostics.ModelTag, model } };
        _inferenceCalls.Add(1, tags);
        _inferenceUsers.Add(users, tags);
        _batchSize.Record(users, tags);
    }

    public void RecordInferenceFailures(string model, InferenceFailureCause cause, int users)
    {
        if (users > 0)
        {
            _inferenceFailures.Add(users, new TagList
            {
                { ERCacheDiagnostics.ModelTag, model },
                { ERCacheDiagnostics.CauseTag, CauseNames[(int)cause] },
            });
        }
    }

    /// <summary>The bounded age buckets of <see cref="ERCacheDiagnostics.StalenessDrift"/>.</summary>
    public static string AgeBucket(TimeSpan age) => age.TotalSeconds switch
    {
        < 30 => "lt_30s",
        < 60 => "30s_1m",
        < 300 => "1m_5m",
        < 600 => "5m_10m",
        < 1800 => "10m_30m",
        < 3600 => "30m_1h",
        _ => "ge_1h",
    };

    public void RecordDrift(string model, double drift, TimeSpan age) =>
        _drift.Record(drift, new TagList { { ERCacheDiagnostics.ModelTag, model }, { ERCacheDiagnostics.AgeTag, AgeBucket(age) } });

    /// <summary>Counts a background inference queued for a refresh ahead.</summary>
    public void RecordRefreshAhead(string model) => RecordBackgroundInference(model, "refresh");

    /// <summary>Counts a background inference queued for a drift sample.</summary>
    public void RecordDriftSample(string model) => RecordBackgroundInference(model, "drift_sample");

    /// <summary>Counts users sent to inference to warm a rollout's next version.</summary>
    public void RecordRolloutWarming(string model, int users) => RecordBackgroundInference(model, "rollout", users);

    private void RecordBackgroundInference(string model, string kind, int users = 1) =>
        _background.Add(users, new TagList { { ERCacheDiagnostics.ModelTag, model }, { ERCacheDiagnostics.KindTag, kind } });

    /// <summary>Registers the rollouts' warm shares (by model and tier) for <see cref="ERCacheDiagnostics.RolloutWarmShare"/>.</summary>
    public void ObserveRollouts(Func<IEnumerable<Measurement<double>>> warmShares) => _observeRollouts = warmShares;

    public void RecordEvictions(long count, in TagList tierTags, bool expired)
    {
        if (count > 0)
        {
            var tags = tierTags;
            tags.Add(ERCacheDiagnostics.ReasonTag, expired ? "expired" : "capacity");
            _evictions.Add(count, tags);
        }
    }

    /// <summary>Detaches the observable instruments from the cache (they report nothing from now on) and disposes the
    /// meter when the cache owns it; a factory's meter is disposed with the factory.</summary>
    public void Dispose()
    {
        _observeRequests = null;
        _observeEntries = null;
        _observeBytes = null;
        _observeInFlight = null;
        _observeCircuits = null;
        _observeRegionalQueue = null;
        if (_ownsMeter)
        {
            Meter.Dispose();
        }
    }

    private static InstrumentAdvice<T> Advice<T>(IReadOnlyList<T> boundaries)
        where T : struct => new() { HistogramBucketBoundaries = boundaries };
}
