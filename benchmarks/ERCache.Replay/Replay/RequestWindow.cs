using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>Requests of one host and model gathered at one instant.</summary>
internal sealed class RequestWindow
{
    private const int ObserveEvery = 256;
    private readonly EmbeddingCache _cache;
    private readonly string _model;
    private readonly ReplayInference _inference;
    private readonly ModelReport _report;
    private readonly int _dimensions;
    private readonly long[] _users;
    private readonly bool[] _fails;
    private readonly float[] _vectors;
    private readonly EmbeddingResult[] _results;
    private readonly ManualInferenceDispatcher _background;
    private readonly float[] _fresh;
    private int _flushes;

    /// <param name="background">Where the cache's background calls (refresh ahead) wait: the window runs them right after
    /// the request that asked for them, at the same instant, so a replay stays deterministic.</param>
    public RequestWindow(EmbeddingCache cache, string model, ModelPolicy policy, ReplayInference inference, ModelReport report, ManualInferenceDispatcher background)
    {
        _background = background;
        _fresh = new float[policy.Dimensions];
        _cache = cache;
        _model = model;
        _inference = inference;
        _report = report;
        _dimensions = policy.Dimensions;
        int size = policy.MaxBatchSize;
        _users = new long[size];
        _fails = new bool[size];
        _vectors = new float[size * _dimensions];
        _results = new EmbeddingResult[size];
    }

    public int Count { get; private set; }

    public bool IsFull => Count == _users.Length;

    public bool Contains(long user) => Array.IndexOf(_users, user, 0, Count) >= 0;

    public void Add(long user, bool fail)
    {
        _users[Count] = user;
        _fails[Count] = fail;
        Count++;
    }

    public void Flush()
    {
        int n = Count;
        if (n == 0)
        {
            return;
        }

        _inference.Failing = _fails.AsMemory(0, n);
        _inference.Users = _users.AsMemory(0, n);
        var pending = _cache.GetManyAsync(_model, _users.AsMemory(0, n), _vectors.AsMemory(0, n * _dimensions), _results.AsMemory(0, n));
        if (!pending.IsCompletedSuccessfully)
        {
            pending.AsTask().GetAwaiter().GetResult();
        }

        _inference.InBackground = true;
        _background.RunAll();
        _inference.InBackground = false;

        var report = _report;
        report.Inferences += _inference.TakeAttempts(out long failed);
        report.InferenceFailures += failed;
        report.Refreshes += _inference.TakeBackground();
        var drift = _inference.Drift;
        long nowMs = _inference.NowMs;
        for (int i = 0; i < n; i++)
        {
            var result = _results[i];
            report.Requests++;
            if (drift is not null && result.Source != EmbeddingSource.Fallback)
            {
                // Against what fresh inference would say now: a fresh vector scores 0 (up to its storage format).
                drift.Fill(_users[i], nowMs, _fresh);
                report.Drift.Record(DriftingEmbedding.Drift(_vectors.AsSpan(i * _dimensions, _dimensions), _fresh));
            }

            if (_fails[i])
            {
                report.FailingRequests++;
            }

            long age = (long)result.Age.TotalMilliseconds;
            switch (result.Source)
            {
                case EmbeddingSource.Direct:
                    report.DirectHits++;
                    report.DirectAges.Record(age);
                    break;
                case EmbeddingSource.Regional:
                    report.RegionalHits++;
                    report.RegionalAges.Record(age);
                    break;
                case EmbeddingSource.Fresh:
                    report.FreshResults++;
                    report.FreshAges.Record(age);
                    break;
                case EmbeddingSource.Failover:
                    report.FailoverHits++;
                    report.FailoverAges.Record(age);
                    break;
                default:
                    report.Fallbacks++;
                    break;
            }
        }

        Count = 0;
        if (++_flushes % ObserveEvery == 0)
        {
            ObserveTiers();
        }
    }

    /// <summary>Peak entries and bytes of this host's tiers of the model.</summary>
    public TierPeak DirectPeak { get; } = new();

    public TierPeak FailoverPeak { get; } = new();

    public void ObserveTiers()
    {
        DirectPeak.Observe(_cache.GetTierStatistics(_model, TierKind.Direct));
        FailoverPeak.Observe(_cache.GetTierStatistics(_model, TierKind.Failover));
    }
}
