using System.Globalization;
using ERCache.Models;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Polly.CircuitBreaker;

namespace ERCache.Health;

/// <summary>
/// The health of one <see cref="EmbeddingCache"/>: <c>Healthy</c>, or <c>Degraded</c> with the reasons when a
/// model's circuit breaker is open, a model's share of fallbacks over the recent window passes the threshold, a
/// model's share of regional values refused (values that do not decode as the model expects) passes its threshold,
/// the regional store's circuit is open, its write queue was full, a background flush failed or a push or clear could
/// not be announced to the other hosts within the window, the last configuration reload was rejected, snapshots are
/// still loading, or the last snapshot write failed or a removal could not be logged (the next restart may start
/// cold); <c>Unhealthy</c> once the cache is disposed. A degraded cache still answers every request (that is its
/// contract), so it never reports <c>Unhealthy</c> while it serves. Register with
/// <c>services.AddHealthChecks().AddERCache()</c>.
/// </summary>
/// <remarks>Both shares compare the model's running totals now with the totals the check recorded about one
/// <see cref="ERCacheHealthCheckOptions.Window"/> ago (or when it was built), so it needs no timer of its own and
/// counts nothing on the request path beyond one counter increment per result (and one add per regional
/// lookup).</remarks>
public sealed class ERCacheHealthCheck : IHealthCheck
{
    private const int MaxSnapshots = 64;

    private readonly EmbeddingCache _cache;
    private readonly ERCacheHealthCheckOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Queue<Totals>> _history = new(StringComparer.OrdinalIgnoreCase);
    private readonly long _created;

    /// <summary>Watches <paramref name="cache"/>.</summary>
    /// <param name="cache">The cache.</param>
    /// <param name="options">Thresholds; the defaults when null.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public ERCacheHealthCheck(EmbeddingCache cache, ERCacheHealthCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(cache);
        _options = options ?? new ERCacheHealthCheckOptions();
        _options.Validate();
        _cache = cache;
        _time = cache.Time;
        _created = _time.GetTimestamp();
    }

    /// <inheritdoc />
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (_cache.IsDisposed)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy("The cache is disposed."));
        }

        var reasons = new List<string>();
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        long now = _time.GetTimestamp();
        foreach (var state in _cache.StatesForHealth())
        {
            string model = state.Name;
            if (state.Scheduler.BreakerState is CircuitState.Open or CircuitState.Isolated)
            {
                reasons.Add($"model '{model}': circuit breaker {state.Scheduler.BreakerState}, inference is not called");
            }

            int abandoned = state.Scheduler.AbandonedCalls, slots = state.Current.Policy.MaxConcurrency;
            data[$"{model}.abandoned_calls"] = abandoned;
            if (abandoned >= slots)
            {
                reasons.Add($"model '{model}': all {slots} inference slot(s) are held by calls past their hard timeout that have not returned, every miss is shed");
            }

            var window = SinceWindow(model, state.Results, now);
            double share = window.Served == 0 ? 0 : (double)window.Fallbacks / window.Served;
            data[$"{model}.results"] = window.Served;
            data[$"{model}.fallbacks"] = window.Fallbacks;
            data[$"{model}.fallback_share"] = share;
            if (window.Served >= _options.MinimumResults && share > _options.FallbackShareThreshold)
            {
                reasons.Add(string.Create(
                    CultureInfo.InvariantCulture,
                    $"model '{model}': {share:P1} of {window.Served} results over the last {_options.Window} were fallbacks (threshold {_options.FallbackShareThreshold:P1})"));
            }

            double refusedShare = window.RegionalFound == 0 ? 0 : (double)window.RegionalRefused / window.RegionalFound;
            data[$"{model}.regional_found"] = window.RegionalFound;
            data[$"{model}.regional_refused"] = window.RegionalRefused;
            if (window.RegionalFound >= _options.MinimumResults && refusedShare > _options.RegionalRefusedShareThreshold)
            {
                reasons.Add(string.Create(
                    CultureInfo.InvariantCulture,
                    $"model '{model}': {refusedShare:P1} of {window.RegionalFound} regional values found over the last {_options.Window} did not decode and were refused (threshold {_options.RegionalRefusedShareThreshold:P1}; the log says why)"));
            }
        }

        data["snapshots_loading"] = _cache.IsLoadingSnapshots;
        if (_cache.IsLoadingSnapshots)
        {
            reasons.Add("snapshots are still loading (the tiers are warming)");
        }

        if (_cache.ReloadProblem is { } reloadProblem)
        {
            reasons.Add($"configuration: {reloadProblem}");
        }

        var snapshotProblems = _cache.Snapshots?.Problems ?? [];
        data["snapshot_problems"] = snapshotProblems.Count;
        foreach (var problem in snapshotProblems)
        {
            reasons.Add($"snapshots: {problem}");
        }

        if (_cache.IsInvalidationSubscribed is { } subscribed)
        {
            data["invalidation_subscribed"] = subscribed;
            if (!subscribed)
            {
                reasons.Add("invalidation subscription lost: other hosts' removals and pushes may be missed, local vectors written before the loss are checked regionally");
            }
        }

        if (_cache.RegionalTier?.SinceQueueFull is { } sinceFull && sinceFull < _options.Window)
        {
            reasons.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"regional store: the write queue was full {sinceFull.TotalSeconds:F0} s ago (Regional:QueueCapacity), fresh vectors were not shared and other hosts infer them again"));
        }

        if (_cache.RegionalTier?.SinceFlushFailed is { } sinceFlushFailed && sinceFlushFailed < _options.Window)
        {
            reasons.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"regional store: a background flush failed {sinceFlushFailed.TotalSeconds:F0} s ago, the values it had taken were not shared (a bug: the log has the exception)"));
        }

        if (_cache.SinceAnnouncementNotSent is { } sinceNotSent && sinceNotSent < _options.Window)
        {
            reasons.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"invalidation: a push or clear could not be announced {sinceNotSent.TotalSeconds:F0} s ago, other hosts may serve the vectors it replaced until their TTL (the log names it)"));
        }

        if (_cache.RegionalCircuitState is CircuitState.Open or CircuitState.Isolated)
        {
            reasons.Add("regional store: circuit breaker open, lookups and writes are skipped");
        }

        return Task.FromResult(reasons.Count == 0
            ? HealthCheckResult.Healthy("Every model is serving normally.", data)
            : HealthCheckResult.Degraded(string.Join("; ", reasons) + ".", data: data));
    }

    /// <summary>A model's counts since about one window ago: against the newest snapshot at least a window old (or the
    /// oldest kept, or zero at the check's creation).</summary>
    private Totals SinceWindow(string model, ResultCounts results, long now)
    {
        long refused = results.RegionalRefused; // before the values found: see ResultCounts.CountRegional
        var current = new Totals(now, results.Served, results.Fallbacks, results.RegionalFound, refused);
        lock (_lock)
        {
            if (!_history.TryGetValue(model, out var snapshots))
            {
                snapshots = new Queue<Totals>();
                snapshots.Enqueue(new Totals(_created, 0, 0, 0, 0)); // the model's totals start with the cache (or its first reload)
                _history[model] = snapshots;
            }

            // Drop snapshots while the next one is already a window old: the front is then the newest such one.
            while (snapshots.Count > 1 && _time.GetElapsedTime(snapshots.ElementAt(1).At, now) >= _options.Window)
            {
                snapshots.Dequeue();
            }

            var baseline = snapshots.Peek();
            var last = snapshots.Last();
            if (_time.GetElapsedTime(last.At, now) >= _options.Window / MaxSnapshots * 2 || snapshots.Count == 1)
            {
                if (snapshots.Count >= MaxSnapshots)
                {
                    snapshots.Dequeue();
                }

                snapshots.Enqueue(current);
            }

            // Totals only grow, unless the model was removed and added again by a reload: then count from zero.
            return current.Served >= baseline.Served && current.RegionalFound >= baseline.RegionalFound
                ? current with
                {
                    Served = current.Served - baseline.Served,
                    Fallbacks = current.Fallbacks - baseline.Fallbacks,
                    RegionalFound = current.RegionalFound - baseline.RegionalFound,
                    RegionalRefused = current.RegionalRefused - baseline.RegionalRefused,
                }
                : current;
        }
    }

    private readonly record struct Totals(long At, long Served, long Fallbacks, long RegionalFound, long RegionalRefused);
}
