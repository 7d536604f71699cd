using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using ERCache.Diagnostics;

namespace ERCache.Samples.RankingService;

/// <summary>
/// The ERCache counters of this service's cache, read in-process through a <see cref="MeterListener"/>. It listens only to the cache's own <see cref="Meter"/> instance, so several services
/// in one process (as in tests) do not see each other's numbers.
/// </summary>
public sealed class ERCacheStats : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _counters = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _gauges = new(StringComparer.Ordinal);
    private long _lastInvalidationApplied;

    public ERCacheStats(EmbeddingCache cache)
    {
        ArgumentNullException.ThrowIfNull(cache);
        var meter = cache.Meter;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
    }

    /// <summary>Counter totals (an observable counter's newest total, such as <c>ercache.requests</c>) and the latest gauge
    /// values, keyed <c>instrument{tag=value,...}</c>.</summary>
    public IReadOnlyDictionary<string, long> Snapshot()
    {
        _listener.RecordObservableInstruments();
        var all = new SortedDictionary<string, long>(_counters, StringComparer.Ordinal);
        foreach (var (key, value) in _gauges)
        {
            all[key] = value;
        }

        return all;
    }

    /// <summary>When this host last applied another host's removal, push or clear: a <see cref="Stopwatch"/> timestamp
    /// (on Linux the system's monotonic clock, so comparable between processes on one machine); 0 when never.</summary>
    public long LastInvalidationApplied => Volatile.Read(ref _lastInvalidationApplied);

    public void Dispose() => _listener.Dispose();

    private void Record(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (instrument is Histogram<int> or Histogram<long>)
        {
            return; // only counters and gauges are summarised here
        }

        var parts = new List<string>(tags.Length);
        foreach (var tag in tags)
        {
            parts.Add($"{tag.Key}={tag.Value}");
            if (tag is { Key: ERCacheDiagnostics.DirectionTag, Value: "applied" } && instrument.Name == ERCacheDiagnostics.InvalidationMessages)
            {
                Volatile.Write(ref _lastInvalidationApplied, Stopwatch.GetTimestamp());
            }
        }

        parts.Sort(StringComparer.Ordinal);
        string key = $"{instrument.Name}{{{string.Join(',', parts)}}}";
        if (instrument.IsObservable)
        {
            _gauges[key] = value;
        }
        else
        {
            _counters.AddOrUpdate(key, value, (_, total) => total + value);
        }
    }

    /// <summary>Requests by source for one model, from <see cref="ERCacheDiagnostics.Requests"/>.</summary>
    public static long Requests(IReadOnlyDictionary<string, long> snapshot, string model, string source) =>
        snapshot.GetValueOrDefault($"{ERCacheDiagnostics.Requests}{{model={model},source={source}}}");
}
