using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace ERCache.Tests.Infrastructure;

/// <summary>
/// Collects what one <see cref="Meter"/> instance records. Stand-in for <c>MetricCollector&lt;T&gt;</c> from the
/// <c>Microsoft.Extensions.Diagnostics.Testing</c> package, which the registry here does not hold. Listens to
/// a single meter instance, so tests running in parallel with their own caches do not see each other.
/// </summary>
internal sealed class MetricCollector : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentQueue<Recorded> _measurements = new();

    public MetricCollector(Meter meter)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter, meter))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        _listener.Start();
    }

    public IReadOnlyList<Recorded> Measurements => _measurements.ToArray();

    /// <summary>Sum of an instrument's values whose tags include every given pair.</summary>
    public double Sum(string instrument, params (string Key, string Value)[] tags) =>
        Matching(instrument, tags).Sum(m => m.Value);

    /// <summary>Number of values an instrument recorded with the given tags (histogram sample count).</summary>
    public int Count(string instrument, params (string Key, string Value)[] tags) =>
        Matching(instrument, tags).Count();

    public IEnumerable<Recorded> Matching(string instrument, params (string Key, string Value)[] tags) =>
        _measurements.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.TryGetValue(t.Key, out var v) && v == t.Value));

    /// <summary>Polls observable instruments (gauges) once.</summary>
    public void RecordObservables() => _listener.RecordObservableInstruments();

    public void Clear() => _measurements.Clear();

    public void Dispose() => _listener.Dispose();

    private void Add<T>(Instrument instrument, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        where T : struct
    {
        var copy = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in tags)
        {
            copy[tag.Key] = tag.Value?.ToString() ?? string.Empty;
        }

        _measurements.Enqueue(new Recorded(instrument.Name, Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture), copy));
    }

    internal sealed record Recorded(string Instrument, double Value, IReadOnlyDictionary<string, string> Tags);
}
