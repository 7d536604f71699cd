using Microsoft.Extensions.Time.Testing;
using System.Runtime;
using System.Runtime.ExceptionServices;
using Stopwatch = System.Diagnostics.Stopwatch;
using ERCache.Inference;
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

/// <summary>What a JIT warm-up did: its replays, of how many requests, how long, and whether the JIT had settled.</summary>
internal readonly record struct WarmUpResult(int Runs, int Requests, TimeSpan Elapsed, bool Settled);

/// <summary>The outcome of one replay.</summary>
internal sealed class ReplayResult
{
    public required IReadOnlyDictionary<string, ModelReport> Models { get; init; }

    public required ModelReport Total { get; init; }

    public required TimeSpan Elapsed { get; init; }

    /// <summary>Threads the users were replayed on (each with caches of its own).</summary>
    public required int Threads { get; init; }

    /// <summary>Why the replay ran on one thread although more were asked for; null otherwise.</summary>
    public string? SingleThreadReason { get; init; }

    public double RequestsPerSecond => Total.Requests / Math.Max(Elapsed.TotalSeconds, 1e-9);
}

/// <summary>
/// Replays a trace through the real library: one <see cref="EmbeddingCache"/> per host built from the given options,
/// a <see cref="FakeTimeProvider"/> set to each request's timestamp, and an inference delegate per model that
/// returns a vector derived from (user, time) and fails the users whose trace row says so.
/// </summary>
/// <remarks>
/// <para>Requests that share a timestamp (and host and model) arrive together: they are sent as one
/// <see cref="EmbeddingCache.GetManyAsync"/> call, so their misses become one delegate call, as under load. A group
/// ends at a new timestamp, at the model's <c>MaxBatchSize</c> (so nothing queues or is shed), and before a user
/// repeats (so a second request of a user at the same instant sees the first one's result, in file order). The
/// clock does not move during a call, so no deadline passes; <c>BatchWindow</c> is set to zero (the replay does the
/// grouping; a window timer on a stopped clock would never fire), and <c>RunInline</c> is on, so a group's delegate
/// call runs on the replay thread with no thread hop.</para>
/// <para>The circuit breaker is turned off: it counts delegate calls that throw, and the replay's delegate never
/// throws (it fails users one by one, as a tower that marks bad rows), so a breaker could never open here and would
/// only add its cost to every call.</para>
/// <para>With more than one thread, users are split into shards by a hash of the id and each shard is replayed on
/// its own thread, through caches (one per host) and a clock of its own. That gives the same answer as one thread
/// exactly when users cannot affect one another: when no tier can fill (every tier's capacity is at least the
/// model's distinct users in the trace), because eviction is what makes one user's entries depend on another's.
/// Otherwise the replay runs on one thread and says why. Each shard's tiers get a share of the configured capacity
/// (its users plus a proportional share of the slack), so the shards together hold what one tier would. The tiers'
/// bytes differ from one thread's by the fixed part of each extra tier (an LRU tier's hit buffer, at most 8 KB),
/// the index tables' rounding, and, when the capacity exceeds the users, at most one partly used slab page per
/// extra shard.</para>
/// </remarks>
internal static class ReplayRunner
{
    public static ReplayResult Run(
        Trace trace, ERCacheOptions options, int hosts = 1, Routing routing = Routing.Sticky, int seed = 1, int threads = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        string[] names = ResolveModels(trace, options);
        foreach (var model in options.Models.Values)
        {
            model.Inference.BatchWindow = TimeSpan.Zero;
            model.Inference.RunInline = true; // the replay's delegate is instant and the clock is stopped: no deadline can pass
            model.Inference.CircuitBreaker.Enabled = false; // it could never open here (see the remarks)
        }

        var users = trace.DistinctUsers();
        string? reason = threads == 1 ? null : WhyUsersInteract(options, names, users);
        int shards = reason is null ? threads : 1;
        var replays = CreateShards(names, options, users, shards, hosts);

        // Setup's garbage (the trace's parsing, earlier replays) is collected now, not on the replay's time.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var stopwatch = Stopwatch.StartNew();
        int[]? randomHosts = hosts > 1 && routing == Routing.Random ? RandomHosts(trace.Requests.Length, hosts, seed) : null;
        RunShards(replays, trace.Requests, randomHosts);
        stopwatch.Stop();

        var models = new Dictionary<string, ModelReport>(StringComparer.Ordinal);
        var total = new ModelReport();
        for (int m = 0; m < names.Length; m++)
        {
            var merged = new ModelReport();
            foreach (var replay in replays)
            {
                merged.Add(replay.Finish(m));
            }

            models[names[m]] = merged;
            total.Add(merged);
        }

        foreach (var replay in replays)
        {
            replay.Dispose();
        }

        return new ReplayResult
        {
            Models = models,
            Total = total,
            Elapsed = stopwatch.Elapsed,
            Threads = shards,
            SingleThreadReason = reason,
        };
    }

    /// <summary>
    /// Runs the replay's code until the JIT has optimised it: .NET first runs a method as quickly compiled code, then
    /// as instrumented code that profiles it (dynamic PGO; its counters are shared by every thread, which made two
    /// replay threads slower than one), and recompiles it optimised once it has been called often, in the background.
    /// A timing from a cold start would partly measure the compiler. Replays the trace's first requests through
    /// throwaway caches, again and again, until the JIT has compiled nothing new for half a second, or until
    /// <paramref name="limit"/>; nothing of it reaches a later replay's caches or counts.
    /// </summary>
    public static WarmUpResult WarmUp(
        Trace trace, ERCacheOptions options, int hosts, Routing routing, int seed, int threads, TimeSpan limit)
    {
        const int PrefixRequests = 20_000;
        var quiet = TimeSpan.FromMilliseconds(500);
        var prefix = new Trace(trace.Models, trace.Requests[..Math.Min(trace.Requests.Length, PrefixRequests)]);
        var clock = Stopwatch.StartNew();
        long compiled = -1;
        var lastCompiled = TimeSpan.Zero;
        int runs = 0;
        do
        {
            Run(prefix, options, hosts, routing, seed, threads);
            runs++;
            long now = JitInfo.GetCompiledMethodCount();
            if (now != compiled)
            {
                compiled = now;
                lastCompiled = clock.Elapsed;
            }
        }
        while (clock.Elapsed < limit && clock.Elapsed - lastCompiled < quiet);

        return new WarmUpResult(runs, prefix.Requests.Length, clock.Elapsed, Settled: clock.Elapsed - lastCompiled >= quiet);
    }

    /// <summary>Null when users cannot affect one another (no tier can fill); otherwise the reason, naming the tier.</summary>
    private static string? WhyUsersInteract(ERCacheOptions options, string[] names, IReadOnlyList<IReadOnlySet<long>> users)
    {
        // The tiers as the library sizes them (MaxBytes may lower a capacity): build them once and ask.
        var none = options.Models.Keys.ToDictionary(k => k, _ => (IEmbeddingInference)new ReplayInference(new FakeTimeProvider(), default));
        using var probe = EmbeddingCache.Create(options, none);
        for (int m = 0; m < names.Length; m++)
        {
            foreach (var kind in (ReadOnlySpan<TierKind>)[TierKind.Direct, TierKind.Failover])
            {
                if (probe.GetTierStatistics(names[m], kind) is { } tier && tier.Capacity < users[m].Count)
                {
                    return $"the {kind} tier of '{names[m]}' holds {tier.Capacity:N0} of {users[m].Count:N0} users, so eviction makes users depend on one another";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// One replay per shard. A shard's caches are built from the options with, for every tier, the shard's users of
    /// the model plus its proportional share of the slack as capacity, so the shards' capacities add up to the
    /// configured one. The library copies options into immutable policies when a cache is built, so the configured
    /// capacities are put back afterwards.
    /// </summary>
    private static ShardReplay[] CreateShards(string[] names, ERCacheOptions options, IReadOnlyList<IReadOnlySet<long>> users, int shards, int hosts)
    {
        if (shards == 1)
        {
            return [new ShardReplay(names, options, hosts)];
        }

        // Users of each configured model per shard, counted in one pass (a model absent from the trace has none).
        var models = options.Models.ToArray();
        var perShard = models.Select(p =>
        {
            var counts = new long[shards];
            int m = Array.FindIndex(names, n => string.Equals(n, p.Key, StringComparison.OrdinalIgnoreCase));
            foreach (long user in m < 0 ? Enumerable.Empty<long>() : users[m])
            {
                counts[ShardOf(user, shards)]++;
            }

            return counts;
        }).ToArray();
        var configured = models.Select(p => (Direct: p.Value.Direct.Capacity, Failover: p.Value.Failover.Capacity)).ToArray();
        var replays = new ShardReplay[shards];
        try
        {
            for (int s = 0; s < shards; s++)
            {
                for (int i = 0; i < models.Length; i++)
                {
                    long all = perShard[i].Sum();
                    models[i].Value.Direct.Capacity = Share(configured[i].Direct, all, perShard[i][s], s, shards);
                    models[i].Value.Failover.Capacity = Share(configured[i].Failover, all, perShard[i][s], s, shards);
                }

                replays[s] = new ShardReplay(names, options, hosts);
            }
        }
        finally
        {
            for (int i = 0; i < models.Length; i++)
            {
                (models[i].Value.Direct.Capacity, models[i].Value.Failover.Capacity) = configured[i];
            }
        }

        return replays;
    }

    /// <summary>A shard's capacity: its users, plus its share of the slack (a model absent from the trace splits evenly).</summary>
    private static int Share(int capacity, long all, long mine, int shard, int shards)
    {
        long share = all == 0
            ? (capacity / shards) + (shard == shards - 1 ? capacity % shards : 0)
            : mine + ((capacity - all) * mine / all);
        return (int)Math.Max(1, share);
    }

    /// <summary>The host of every request under random routing, drawn in trace order (whatever the thread count).</summary>
    private static int[] RandomHosts(int requests, int hosts, int seed)
    {
        var rng = new Random(seed);
        var chosen = new int[requests];
        for (int i = 0; i < chosen.Length; i++)
        {
            chosen[i] = rng.Next(hosts);
        }

        return chosen;
    }

    private static void RunShards(ShardReplay[] replays, TraceRequest[] requests, int[]? randomHosts)
    {
        if (replays.Length == 1)
        {
            replays[0].Replay(requests, 0, 1, randomHosts);
            return;
        }

        var failures = new ExceptionDispatchInfo?[replays.Length];
        var workers = new Thread[replays.Length - 1];
        for (int s = 1; s < replays.Length; s++)
        {
            int shard = s;
            workers[s - 1] = new Thread(() => failures[shard] = Capture(() => replays[shard].Replay(requests, shard, replays.Length, randomHosts)))
            {
                IsBackground = true,
                Name = $"replay shard {s}",
            };
            workers[s - 1].Start();
        }

        failures[0] = Capture(() => replays[0].Replay(requests, 0, replays.Length, randomHosts));
        foreach (var worker in workers)
        {
            worker.Join();
        }

        failures.FirstOrDefault(f => f is not null)?.Throw();
    }

    private static ExceptionDispatchInfo? Capture(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception ex)
        {
            return ExceptionDispatchInfo.Capture(ex);
        }
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

    /// <summary>A user's shard: a different mix from <see cref="StickyHost"/>, so shards do not line up with hosts.</summary>
    private static int ShardOf(long user, int shards) => (int)(((ulong)user * 0xD6E8FEB86659FD93UL >> 33) % (ulong)shards);

    private static void FlushAll(List<Window> open)
    {
        foreach (var window in open)
        {
            window.Flush();
        }

        open.Clear();
    }

    /// <summary>One shard's replay: its own clock, delegates, caches (one per host) and reports.</summary>
    private sealed class ShardReplay : IDisposable
    {
        private readonly FakeTimeProvider _clock = new();
        private readonly DateTimeOffset _start;
        private readonly EmbeddingCache[] _caches;
        private readonly ModelReport[] _reports;
        private readonly Window[,] _windows;

        public ShardReplay(string[] names, ERCacheOptions options, int hosts)
        {
            _start = _clock.GetUtcNow();
            var inference = names.Select(_ => new ReplayInference(_clock, _start)).ToArray();
            var byName = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (IEmbeddingInference)inference[p.i], StringComparer.OrdinalIgnoreCase);
            foreach (var configured in options.Models.Keys.Where(k => !byName.ContainsKey(k)))
            {
                byName[configured] = new ReplayInference(_clock, _start); // configured but absent from the trace
            }

            _caches = Enumerable.Range(0, hosts).Select(_ => EmbeddingCache.Create(options, byName, _clock)).ToArray();
            _reports = names.Select(_ => new ModelReport()).ToArray();
            _windows = new Window[hosts, names.Length];
            for (int h = 0; h < hosts; h++)
            {
                for (int m = 0; m < names.Length; m++)
                {
                    _windows[h, m] = new Window(_caches[h], names[m], _caches[h].GetPolicy(names[m]), inference[m], _reports[m]);
                }
            }
        }

        /// <summary>Replays the requests of the users of <paramref name="shard"/>, in trace order.</summary>
        public void Replay(TraceRequest[] requests, int shard, int shards, int[]? randomHosts)
        {
            int hosts = _caches.Length;
            var open = new List<Window>();
            long currentTs = long.MinValue;
            for (int i = 0; i < requests.Length; i++)
            {
                var request = requests[i];
                if (shards > 1 && ShardOf(request.User, shards) != shard)
                {
                    continue;
                }

                if (request.TimestampMs != currentTs)
                {
                    FlushAll(open);
                    currentTs = request.TimestampMs;
                    _clock.SetUtcNow(_start.AddMilliseconds(currentTs));
                }

                int host = hosts == 1 ? 0 : randomHosts is not null ? randomHosts[i] : StickyHost(request.User, hosts);
                var window = _windows[host, request.Model];
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
        }

        /// <summary>The shard's report of model <paramref name="m"/>, with its tiers' peaks summed over hosts.</summary>
        public ModelReport Finish(int m)
        {
            for (int h = 0; h < _caches.Length; h++)
            {
                _windows[h, m].ObserveTiers();
                _reports[m].Direct.Add(_windows[h, m].DirectPeak); // tiers of different hosts hold different entries: sum
                _reports[m].Failover.Add(_windows[h, m].FailoverPeak);
            }

            return _reports[m];
        }

        public void Dispose()
        {
            foreach (var cache in _caches)
            {
                cache.Dispose();
            }
        }
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
    private sealed class ReplayInference(FakeTimeProvider clock, DateTimeOffset start) : IEmbeddingInference
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

                // Deterministic in (user, time) and finite; one division per row, not per value.
                var row = batch.GetRow(i).Span;
                float first = (users[i] % 1000 * 0.001f) + (nowMs % 1000 * 1e-6f);
                for (int j = 0; j < row.Length; j++)
                {
                    row[j] = first + (j * 0.001f);
                }
            }

            return ValueTask.CompletedTask;
        }
    }
}
