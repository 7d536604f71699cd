using System.Runtime;
using Stopwatch = System.Diagnostics.Stopwatch;
using ERCache.Regional;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Replay;

/// <summary>
/// Replays a trace through the real library as a discrete-event simulation: one <see cref="EmbeddingCache"/> per host
/// built from the given options, on a <see cref="SimulationClock"/> that reaches each request's timestamp after
/// running every tower completion, library timer and timeline event due before it, and an inference delegate per host
/// and model (<see cref="ReplayInference"/>) that returns a vector derived from (user, time) and fails the users whose
/// trace row says so.
/// </summary>
/// <remarks>
/// <para>Requests that share a timestamp (and host and model) arrive together: they are sent as one
/// <see cref="EmbeddingCache.GetManyAsync"/> call, so their misses become one delegate call, as under load. A group
/// ends at a new timestamp, at the model's <c>MaxBatchSize</c>, and before a user repeats (so a second request of a
/// user at the same instant sees the first one's result, in file order).</para>
/// <para>With unbounded towers (the default) a delegate call completes before it returns and the clock does not move
/// during it, so no deadline passes and nothing queues; <c>BatchWindow</c> is set to zero (the replay does the
/// grouping) and <c>RunInline</c> is on. With finite towers (<see cref="ReplayTimeline.Towers"/>) a call ends when the
/// clock reaches its cost, and the model's own settings (window, concurrency, queue, deadline) decide what waits, what
/// is shed and what misses its deadline, as they would in production.</para>
/// <para>The circuit breaker is turned off. Polly runs a breaker's state changes on a thread of its own, and a failing
/// call waits for them, so a replay with a breaker would leave its one thread and stop being repeatable. A tower
/// outage is therefore answered call by call (each fails at once), not by an open circuit.</para>
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
        Trace trace, ERCacheOptions options, int hosts = 1, Routing routing = Routing.Sticky, int seed = 1, int threads = 1, IRegionalStore? regional = null,
        DriftingEmbedding? drift = null, ReplayTimeline? timeline = null, Action<double>? progress = null)
    {
        timeline ??= ReplayTimeline.Unbounded;
        ArgumentOutOfRangeException.ThrowIfLessThan(hosts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        string[] names = ResolveModels(trace, options);
        options = Shards.Copy(options); // the caller's options stay as given
        foreach (var (name, model) in options.Models)
        {
            // Polly runs a breaker's state changes on a thread of its own and the failing call waits for them, so a
            // replay with a breaker could not stay on one thread (see the remarks).
            model.Inference.CircuitBreaker.Enabled = false;
            if (timeline.TowerOf(name) is null)
            {
                model.Inference.BatchWindow = TimeSpan.Zero;
                model.Inference.RunInline = true; // the tower is instant and the clock is stopped: no deadline can pass
            }
        }

        var users = trace.DistinctUsers();
        string? reason = threads == 1 ? null
            : timeline.HasCapacity ? "the towers have finite capacity, so the users of a host share its queue"
            : Shards.WhyUsersInteract(options, names, users);
        int shards = reason is null ? threads : 1;
        var replays = Shards.Create(names, options, users, shards, hosts, regional, drift, timeline);

        // Setup's garbage (the trace's parsing, earlier replays) is collected now, not on the replay's time.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var stopwatch = Stopwatch.StartNew();
        int[]? randomHosts = hosts > 1 && routing == Routing.Random ? RandomHosts(trace.Requests.Length, hosts, seed) : null;
        Shards.Run(replays, trace.Requests, randomHosts, progress);
        stopwatch.Stop();

        var models = new Dictionary<string, ModelReport>(StringComparer.Ordinal);
        var series = new Dictionary<string, TimeSeries>(StringComparer.Ordinal);
        var total = new ModelReport();
        long windowMs = Math.Max(1, (long)timeline.Window.TotalMilliseconds);
        var totalSeries = new TimeSeries(windowMs);
        var staleServes = new long[timeline.Events.Count];
        for (int m = 0; m < names.Length; m++)
        {
            var merged = new ModelReport();
            var mergedSeries = new TimeSeries(windowMs);
            foreach (var replay in replays)
            {
                merged.Add(replay.Finish(m));
                mergedSeries.Add(replay.Series(m));
            }

            models[names[m]] = merged;
            series[names[m]] = mergedSeries;
            total.Add(merged);
            totalSeries.Add(mergedSeries);
        }

        var hostSeries = Enumerable.Range(0, hosts).Select(_ => new TimeSeries(windowMs)).ToArray();
        foreach (var replay in replays)
        {
            for (int h = 0; h < hosts; h++)
            {
                hostSeries[h].Add(replay.HostSeries(h));
            }

            for (int e = 0; e < staleServes.Length; e++)
            {
                staleServes[e] += replay.Deletions.StaleServes[e];
            }
        }

        RegionalTraffic? traffic = null;
        foreach (var replay in replays)
        {
            if (replay.Traffic is { } shardTraffic)
            {
                (traffic ??= new RegionalTraffic()).Add(shardTraffic);
            }

            replay.Dispose();
        }

        return new ReplayResult
        {
            Models = models,
            Total = total,
            Elapsed = stopwatch.Elapsed,
            Threads = shards,
            SingleThreadReason = reason,
            Regional = traffic,
            Series = series,
            TotalSeries = totalSeries,
            Timeline = timeline,
            HostSeries = hostSeries,
            Events = timeline.Events.Select((e, i) => EventSummary.Of(e, totalSeries, staleServes[i], e.Kind == ReplayEventKind.Restart ? hostSeries[e.Host] : null)).ToArray(),
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

    /// <summary>Maps the trace's model column onto configured model names.</summary>
    internal static string[] ResolveModels(Trace trace, ERCacheOptions options)
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
}
