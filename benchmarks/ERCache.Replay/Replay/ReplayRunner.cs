using Stopwatch = System.Diagnostics.Stopwatch;
using ERCache.Inference;
using ERCache.Policies;
using ERCache.Replay.Traces;
using ERCache.Testing;

namespace ERCache.Replay.Replay;

/// <summary>How requests are spread over several hosts, each with its own in-process cache.</summary>
internal enum Routing
{
    /// <summary>A user always goes to the same host (hash of the user id).</summary>
    Sticky,

    /// <summary>Each request goes to a host chosen at random (seeded).</summary>
    Random,
}

/// <summary>The outcome of one replay.</summary>
internal sealed class ReplayResult
{
    public required IReadOnlyDictionary<string, ModelReport> Models { get; init; }

    public required ModelReport Total { get; init; }

    public required TimeSpan Elapsed { get; init; }

    public double RequestsPerSecond => Total.Requests / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

/// <summary>
/// Replays a trace through the real library: one <see cref="EmbeddingCache"/> per host built from the given options,
/// a <see cref="ManualTimeProvider"/> set to each request's timestamp, and an inference delegate per model that
/// returns a vector derived from (user, time) and fails the users whose trace row says so.
/// </summary>
/// <remarks>
/// Requests that share a timestamp (and host and model) arrive together: they are sent as one
/// <see cref="EmbeddingCache.GetManyAsync"/> call, so their misses become one delegate call, as under load. A group
/// ends at a new timestamp, at the model's <c>MaxBatchSize</c> (so nothing queues or is shed), and before a user
/// repeats (so a second request of a user at the same instant sees the first one's result, in file order). The
/// clock does not move during a call, so no deadline passes; <c>BatchWindow</c> is set to zero (the replay does the
/// grouping; a window timer on a stopped clock would never fire), and <c>RunInline</c> is on, so a group's delegate
/// call runs on the replay thread with no thread hop.
/// </remarks>
internal static class ReplayRunner
{
    public static ReplayResult Run(Trace trace, ERCacheOptions options, int hosts = 1, Routing routing = Routing.Sticky, int seed = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 1);
        string[] names = ResolveModels(trace, options);
        foreach (var model in options.Models.Values)
        {
            model.Inference.BatchWindow = TimeSpan.Zero;
            model.Inference.RunInline = true; // the replay's delegate is instant and the clock is stopped: no deadline can pass
        }

        var clock = new ManualTimeProvider();
        var start = clock.GetUtcNow();
        var inference = names.Select(n => new ReplayInference(clock, start)).ToArray();
        var byName = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (IEmbeddingInference)inference[p.i], StringComparer.OrdinalIgnoreCase);
        foreach (var configured in options.Models.Keys.Where(k => !byName.ContainsKey(k)))
        {
            byName[configured] = new ReplayInference(clock, start); // configured but absent from the trace
        }

        var caches = Enumerable.Range(0, hosts).Select(_ => EmbeddingCache.Create(options, byName, clock)).ToArray();
        var reports = names.Select(_ => new ModelReport()).ToArray();
        var windows = new Window[hosts, names.Length];
        for (int h = 0; h < hosts; h++)
        {
            for (int m = 0; m < names.Length; m++)
            {
                windows[h, m] = new Window(caches[h], names[m], caches[h].GetPolicy(names[m]), inference[m], reports[m]);
            }
        }

        var rng = new Random(seed);
        var open = new List<Window>();
        long currentTs = long.MinValue;
        var stopwatch = Stopwatch.StartNew();
        foreach (var request in trace.Requests)
        {
            if (request.TimestampMs != currentTs)
            {
                FlushAll(open);
                currentTs = request.TimestampMs;
                clock.SetUtcNow(start.AddMilliseconds(currentTs));
            }

            int host = hosts == 1 ? 0 : routing == Routing.Sticky ? StickyHost(request.User, hosts) : rng.Next(hosts);
            var window = windows[host, request.Model];
            if (window.Contains(request.User) || window.IsFull)
            {
                window.Flush();
            }

            if (window.Count == 0)
            {
                open.Add(window);
            }

            window.Add(request.User, request.Fail);
        }

        FlushAll(open);
        stopwatch.Stop();

        var models = new Dictionary<string, ModelReport>(StringComparer.Ordinal);
        var total = new ModelReport();
        for (int m = 0; m < names.Length; m++)
        {
            for (int h = 0; h < hosts; h++)
            {
                windows[h, m].ObserveTiers();
                reports[m].Direct.Add(windows[h, m].DirectPeak); // tiers of different hosts hold different entries: sum
                reports[m].Failover.Add(windows[h, m].FailoverPeak);
            }

            models[names[m]] = reports[m];
            total.Add(reports[m]);
        }

        foreach (var cache in caches)
        {
            cache.Dispose();
        }

        return new ReplayResult { Models = models, Total = total, Elapsed = stopwatch.Elapsed };
    }

    /// <summary>Maps the trace's model column onto configured model names.</summary>
    private static string[] ResolveModels(Trace trace, ERCacheOptions options)
    {
        if (trace.Models is [""])
        {
            return options.Models.Count == 1
                ? [options.Models.Keys.Single()]
                : throw new ArgumentException($"The trace has no model column, so exactly one model must be configured (got {options.Models.Count}: {string.Join(", ", options.Models.Keys)}).");
        }

        return trace.Models.Select(m => options.Models.Keys.FirstOrDefault(k => string.Equals(k, m, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"The trace names model '{m}', which is not configured (configured: {string.Join(", ", options.Models.Keys)}).")).ToArray();
    }

    private static int StickyHost(long user, int hosts) => (int)(((ulong)user * 0x9E3779B97F4A7C15UL >> 32) % (ulong)hosts);

    private static void FlushAll(List<Window> open)
    {
        foreach (var window in open)
        {
            window.Flush();
        }

        open.Clear();
    }

    /// <summary>Requests of one host and model gathered at one instant.</summary>
    private sealed class Window
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
        private int _flushes;

        public Window(EmbeddingCache cache, string model, ModelPolicy policy, ReplayInference inference, ModelReport report)
        {
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

            var report = _report;
            report.Inferences += _inference.TakeAttempts(out long failed);
            report.InferenceFailures += failed;
            for (int i = 0; i < n; i++)
            {
                var result = _results[i];
                report.Requests++;
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

    /// <summary>
    /// The replay's user tower: a vector derived from (user, time), or a failure for the users the trace marks. It is
    /// told the window's users and their fail flags before each call (one window is in flight at a time).
    /// </summary>
    private sealed class ReplayInference(ManualTimeProvider clock, DateTimeOffset start) : IEmbeddingInference
    {
        private long _attempts;
        private long _failures;

        public ReadOnlyMemory<bool> Failing { get; set; }

        public ReadOnlyMemory<long> Users { get; set; }

        public long TakeAttempts(out long failures)
        {
            failures = _failures;
            long attempts = _attempts;
            _attempts = 0;
            _failures = 0;
            return attempts;
        }

        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            long nowMs = (long)(clock.GetUtcNow() - start).TotalMilliseconds;
            var users = batch.UserIds.Span;
            var windowUsers = Users.Span;
            var failing = Failing.Span;
            for (int i = 0; i < batch.Count; i++)
            {
                _attempts++;
                int at = windowUsers.IndexOf(users[i]);
                if (at >= 0 && failing[at])
                {
                    _failures++;
                    batch.Fail(i);
                    continue;
                }

                var row = batch.GetRow(i).Span;
                for (int j = 0; j < row.Length; j++)
                {
                    row[j] = ((users[i] + j) % 1000 * 0.001f) + (nowMs % 1000 * 1e-6f);
                }
            }

            return ValueTask.CompletedTask;
        }
    }
}
