namespace ERCache.Replay.Replay;

/// <summary>
/// Requests of one host and model gathered at one instant, sent as one <see cref="EmbeddingCache.GetManyAsync"/>
/// call. With unbounded towers the call completes before it returns; with finite ones it completes when the clock
/// reaches its tower call's end or its deadline, and its results are counted then (against the window it arrived in).
/// </summary>
internal sealed class RequestWindow
{
    private const int ObserveEvery = 256;
    private readonly string _model;
    private readonly ReplayInference _tower;
    private readonly ModelReport _report;
    private readonly TimeSeries _series;
    private readonly TimeSeries _hostSeries;
    private readonly SeriesWindow _counts = new(); // one group's counts, added to the model's and the host's windows
    private readonly DeletionLog _deletions;
    private readonly SimulationClock _clock;
    private readonly int _dimensions;
    private readonly int _size;
    private readonly bool _sampleQueue;
    private readonly Action _pump;
    private readonly Stack<RequestGroup> _spare = new();
    private readonly float[] _fresh;
    private RequestGroup _current;
    private int _flushes;
    private int _thread; // the replay's thread: every answer must come on it

    public RequestWindow(
        EmbeddingCache cache, string model, ModelPolicy policy, ReplayInference tower, ModelReport report, TimeSeries series, TimeSeries hostSeries,
        DeletionLog deletions, SimulationClock clock, bool sampleQueue, Action pump)
    {
        _hostSeries = hostSeries;
        _pump = pump;
        Cache = cache;
        _model = model;
        _tower = tower;
        _report = report;
        _series = series;
        _deletions = deletions;
        _clock = clock;
        _sampleQueue = sampleQueue;
        _dimensions = policy.Dimensions;
        _size = policy.MaxBatchSize;
        _fresh = new float[_dimensions];
        _current = new RequestGroup(_size, _dimensions);
    }

    /// <summary>The host's cache; replaced when the host restarts.</summary>
    public EmbeddingCache Cache { get; set; }

    /// <summary>Request groups sent and not answered yet.</summary>
    public int Outstanding { get; private set; }

    public int Count => _current.Count;

    public bool IsFull => _current.Count == _size;

    public bool Contains(long user) => Array.IndexOf(_current.Users, user, 0, _current.Count) >= 0;

    public void Add(long user, bool fail) => _current.Add(user, fail);

    public void Flush()
    {
        var group = _current;
        int n = group.Count;
        if (n == 0)
        {
            return;
        }

        _thread = Environment.CurrentManagedThreadId;
        _current = _spare.TryPop(out var spare) ? spare : new RequestGroup(_size, _dimensions);
        group.ArrivalMs = _clock.NowMs;
        _tower.Requested(group.Users.AsSpan(0, n), group.Fails.AsSpan(0, n));
        var pending = Cache.GetManyAsync(_model, group.Users.AsMemory(0, n), group.Vectors.AsMemory(0, n * _dimensions), group.Results.AsMemory(0, n));
        if (pending.IsCompleted)
        {
            pending.GetAwaiter().GetResult();
            Answer(group);
        }
        else
        {
            Outstanding++;
            pending.AsTask().ContinueWith(
                static (task, state) =>
                {
                    var (window, group) = ((RequestWindow, RequestGroup))state!;
                    task.GetAwaiter().GetResult();
                    window.Answer(group);
                    window.Outstanding--; // not when answering failed: the replay then reports unanswered requests
                },
                (this, group),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, // on the replay's thread, at the instant it completes
                TaskScheduler.Default);
        }

        _pump(); // the calls this request dispatched (the next batch, a refresh ahead) start at this instant
        if (_sampleQueue)
        {
            var window = _series.At(group.ArrivalMs);
            window.MaxQueue = Math.Max(window.MaxQueue, Cache.GetQueuedUsers(_model));
        }

        if (++_flushes % ObserveEvery == 0)
        {
            ObserveTiers();
        }
    }

    /// <summary>Counts a group's results at the clock's current time, against the window it arrived in.</summary>
    private void Answer(RequestGroup group)
    {
        if (Environment.CurrentManagedThreadId != _thread)
        {
            throw new InvalidOperationException($"A request of '{_model}' was answered on thread {Environment.CurrentManagedThreadId}, not on the replay's thread {_thread}: something in the library left the simulation's thread.");
        }

        int n = group.Count;
        _tower.Answered(group.Users.AsSpan(0, n));
        var report = _report;
        var window = _counts;
        var drift = _tower.Drift;
        long nowMs = _clock.NowMs;
        for (int i = 0; i < n; i++)
        {
            var result = group.Results[i];
            long user = group.Users[i];
            report.Requests++;
            window.Requests++;
            if (drift is not null && result.Source != EmbeddingSource.Fallback)
            {
                // Against what fresh inference would say now: a fresh vector scores 0 (up to its storage format).
                drift.Fill(user, nowMs, _fresh);
                double d = DriftingEmbedding.Drift(group.Vectors.AsSpan(i * _dimensions, _dimensions), _fresh);
                report.Drift.Record(d);
                window.RecordDrift(d);
            }

            if (group.Fails[i])
            {
                report.FailingRequests++;
            }

            if (result.FailureCause == InferenceFailureCause.Timeout)
            {
                window.DeadlineMisses++;
            }
            else if (result.FailureCause == InferenceFailureCause.Overload)
            {
                window.Shed++;
            }

            long age = (long)result.Age.TotalMilliseconds;
            _deletions.Check(user, nowMs, age, result.Source);
            switch (result.Source)
            {
                case EmbeddingSource.Direct:
                    report.DirectHits++;
                    report.DirectAges.Record(age);
                    window.Direct++;
                    break;
                case EmbeddingSource.Regional:
                    report.RegionalHits++;
                    report.RegionalAges.Record(age);
                    window.Regional++;
                    break;
                case EmbeddingSource.Fresh:
                    report.FreshResults++;
                    report.FreshAges.Record(age);
                    window.Fresh++;
                    break;
                case EmbeddingSource.Failover:
                    report.FailoverHits++;
                    report.FailoverAges.Record(age);
                    window.Failover++;
                    break;
                default:
                    report.Fallbacks++;
                    window.Fallback++;
                    break;
            }
        }

        _series.At(group.ArrivalMs).Add(window);
        _hostSeries.At(group.ArrivalMs).Add(window);
        window.Clear();
        group.Count = 0;
        _spare.Push(group);
    }

    /// <summary>Peak entries and bytes of this host's tiers of the model.</summary>
    public TierPeak DirectPeak { get; } = new();

    public TierPeak FailoverPeak { get; } = new();

    public void ObserveTiers()
    {
        DirectPeak.Observe(Cache.GetTierStatistics(_model, TierKind.Direct));
        FailoverPeak.Observe(Cache.GetTierStatistics(_model, TierKind.Failover));
    }

    /// <summary>One request group's buffers, reused once it is answered.</summary>
    private sealed class RequestGroup(int size, int dimensions)
    {
        public long[] Users { get; } = new long[size];

        public bool[] Fails { get; } = new bool[size];

        public float[] Vectors { get; } = new float[size * dimensions];

        public EmbeddingResult[] Results { get; } = new EmbeddingResult[size];

        public int Count { get; set; }

        public long ArrivalMs { get; set; }

        public void Add(long user, bool fail)
        {
            Users[Count] = user;
            Fails[Count] = fail;
            Count++;
        }
    }
}
