using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>
/// Every ERCache instrument of one <see cref="Meter"/> instance, each collected by a <see cref="MetricCollector{T}"/>
/// (Microsoft.Extensions.Diagnostics.Testing), behind the queries the tests make across instruments: sums and
/// counts filtered by tags. Bound to one meter instance, so tests running in parallel do not see each other.
/// </summary>
internal sealed class CacheMetrics : IDisposable
{
    private readonly Dictionary<string, Collector> _collectors = new(StringComparer.Ordinal);

    public CacheMetrics(Meter meter)
    {
        // An observable counter: each poll reports the totals so far, so its queries read the latest poll.
        _collectors[ERCacheDiagnostics.Requests] = Collector.OfTotals(new MetricCollector<long>(meter, ERCacheDiagnostics.Requests));
        foreach (var name in new[] { ERCacheDiagnostics.InferenceCalls, ERCacheDiagnostics.InferenceUsers,
                     ERCacheDiagnostics.InferenceFailures, ERCacheDiagnostics.Evictions, ERCacheDiagnostics.Entries, ERCacheDiagnostics.TierBytes,
                     ERCacheDiagnostics.InferenceCoalesced, ERCacheDiagnostics.InferenceShed, ERCacheDiagnostics.BackgroundInferences, ERCacheDiagnostics.InvalidationMessages })
        {
            _collectors[name] = Collector.Of(new MetricCollector<long>(meter, name));
        }

        foreach (var name in new[] { ERCacheDiagnostics.VectorAge, ERCacheDiagnostics.InferenceDuration, ERCacheDiagnostics.StalenessDrift, ERCacheDiagnostics.RolloutWarmShare })
        {
            _collectors[name] = Collector.Of(new MetricCollector<double>(meter, name));
        }

        foreach (var name in new[] { ERCacheDiagnostics.InferenceBatchSize, ERCacheDiagnostics.InferenceInFlight, ERCacheDiagnostics.CircuitState })
        {
            _collectors[name] = Collector.Of(new MetricCollector<int>(meter, name));
        }
    }

    /// <summary>Every measurement of every instrument.</summary>
    public IEnumerable<Recorded> Measurements => _collectors.Keys.SelectMany(name => Matching(name));

    /// <summary>Sum of an instrument's values whose tags include every given pair (of an observable counter, of its totals
    /// now).</summary>
    public double Sum(string instrument, params (string Key, string Value)[] tags) => Matching(instrument, tags).Sum(m => m.Value);

    /// <summary>Number of values an instrument recorded with the given tags (histogram sample count).</summary>
    public int Count(string instrument, params (string Key, string Value)[] tags) => Matching(instrument, tags).Count();

    public IEnumerable<Recorded> Matching(string instrument, params (string Key, string Value)[] tags) =>
        _collectors[instrument].Snapshot(instrument)
            .Where(m => tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && v == t.Value));

    /// <summary>Polls observable instruments (gauges) once.</summary>
    public void RecordObservables()
    {
        foreach (var collector in _collectors.Values)
        {
            collector.RecordObservables();
        }
    }

    public void Clear()
    {
        foreach (var collector in _collectors.Values)
        {
            collector.Clear();
        }
    }

    public void Dispose()
    {
        foreach (var collector in _collectors.Values)
        {
            collector.Dispose();
        }
    }

    internal sealed record Recorded(string Instrument, double Value, IReadOnlyDictionary<string, string> Tags);

    /// <summary>One typed collector seen through the operations the queries need.</summary>
    private sealed record Collector(Func<string, IEnumerable<Recorded>> Snapshot, Action RecordObservables, Action Clear, Action Dispose)
    {
        public static Collector Of<T>(MetricCollector<T> collector)
            where T : struct =>
            new(
                name => collector.GetMeasurementSnapshot().Select(m => new Recorded(
                    name,
                    Convert.ToDouble(m.Value, System.Globalization.CultureInfo.InvariantCulture),
                    m.Tags.ToDictionary(t => t.Key, t => t.Value?.ToString() ?? string.Empty, StringComparer.Ordinal))),
                collector.RecordObservableInstruments,
                () => collector.Clear(),
                collector.Dispose);

        /// <summary>An observable counter's collector: a query polls it and reads the newest total of each tag set.</summary>
        public static Collector OfTotals<T>(MetricCollector<T> collector)
            where T : struct
        {
            var each = Of(collector);
            return each with
            {
                Snapshot = name =>
                {
                    collector.RecordObservableInstruments();
                    return each.Snapshot(name)
                        .GroupBy(m => string.Join(',', m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}")))
                        .Select(g => g.Last());
                },
            };
        }
    }
}
