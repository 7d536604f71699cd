using System.Globalization;
using System.Text;
using System.Text.Json;
using ERCache.Replay.Replay;

namespace ERCache.Replay.Output;

/// <summary>Writes a replay's result as a Markdown table and as the JSON the README documents.</summary>
internal static class ReportWriter
{
    public static string Markdown(ReplayResult result)
    {
        var sb = new StringBuilder();
        bool drift = result.Total.Drift.Count > 0;
        sb.AppendLine("| Model | Requests | Direct hits | Inferences | Refreshes | Inference failures | Failover hits | Fallbacks | Compute saved | Fallback rate | Without cache | Age p50 / p90 / p99 |" + (drift ? " Drift p50 / p99 / mean |" : ""));
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" + (drift ? "---|" : ""));
        foreach (var (name, report) in result.Models)
        {
            Row(sb, name, report, drift);
        }

        if (result.Models.Count > 1)
        {
            Row(sb, "**total**", result.Total, drift);
        }

        return sb.ToString();
    }

    private static void Row(StringBuilder sb, string name, ModelReport r, bool drift)
    {
        var ages = r.AllAges();
        sb.AppendLine(string.Create(
            CultureInfo.InvariantCulture,
            $"| {name} | {r.Requests:N0} | {r.DirectHits:N0} | {r.Inferences:N0} | {r.Refreshes:N0} | {r.InferenceFailures:N0} | {r.FailoverHits:N0} | {r.Fallbacks:N0} | {r.ComputeSaved:P1} | {r.FallbackRate:P2} | {r.FallbackRateWithoutCache:P2} | {Ms(ages.Percentile(50))} / {Ms(ages.Percentile(90))} / {Ms(ages.Percentile(99))} |") +
            (drift ? $" {Drift(r.Drift.Percentile(50))} / {Drift(r.Drift.Percentile(99))} / {Drift(r.Drift.Mean)} |" : ""));
    }

    /// <summary>A drift figure for tables: four significant digits.</summary>
    public static string Drift(double? drift) => drift is { } d ? d.ToString("G4", CultureInfo.InvariantCulture) : "-";

    public static string Ms(long? ms) => ms switch
    {
        null => "-",
        < 1000 => $"{ms} ms",
        < 60_000 => string.Create(CultureInfo.InvariantCulture, $"{ms / 1000.0:0.#} s"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{ms / 60_000.0:0.#} min"),
    };

    /// <summary>Per event: fallback share and peak inference rate (a multiple of the 30 minutes before) in the 1, 5
    /// and 30 minutes after it, the time until the inference rate is back within 10 % of steady and until the direct-hit
    /// share is back to 90 % of steady, and stale serves.</summary>
    public static string EventTable(ReplayResult result)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| Event | Fallback share: 30 min before | 1 min after | 5 min after | 30 min after | Peak inference rate (x steady): 1 / 5 / 30 min | Steady rate | Back within 10 % of steady | Direct hits back to 90 % of steady | Served although deleted |");
        sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var e in result.Events.SelectMany(e => e.Host is { } host ? [e, host] : new[] { e }))
        {
            string peaks = string.Join(" / ", e.After.Select(p => e.PeakMultiple(p) is { } m ? string.Create(CultureInfo.InvariantCulture, $"{m:F2}") : "-"));
            string recovery = e.Recovery is { } r ? Ms((long)r.TotalMilliseconds) : "never";
            string directRecovery = e.DirectRecovery is { } d ? Ms((long)d.TotalMilliseconds) : "never";
            string stale = e.Event.Kind == ReplayEventKind.Delete ? string.Create(CultureInfo.InvariantCulture, $"{e.StaleServes:N0}") : "-";
            sb.AppendLine(string.Create(
                CultureInfo.InvariantCulture,
                $"| {e.Event.Label}{(e.Host is null && e.Event.Kind == ReplayEventKind.Restart ? $", host {e.Event.Host} alone" : "")} | {e.Before.FallbackShare:P2} | {e.After[0].FallbackShare:P2} | {e.After[1].FallbackShare:P2} | {e.After[2].FallbackShare:P2} | {peaks} | {e.SteadyRate:F1}/s | {recovery} | {directRecovery} | {stale} |"));
        }

        return sb.ToString();
    }

    private static void WriteSeconds(Utf8JsonWriter json, string name, TimeSpan? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v.TotalSeconds);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    public static void Json(ReplayResult result, Stream output, bool withSeries = false)
    {
        using var json = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("models");
        foreach (var (name, report) in result.Models)
        {
            json.WritePropertyName(name);
            Object(json, report);
        }

        json.WriteEndObject();
        json.WritePropertyName("total");
        Object(json, result.Total);
        json.WriteNumber("elapsedSeconds", Math.Round(result.Elapsed.TotalSeconds, 3));
        json.WriteNumber("requestsPerSecond", Math.Round(result.RequestsPerSecond));
        json.WriteNumber("threads", result.Threads);
        if (result.Regional is { } traffic)
        {
            json.WriteStartObject("regional");
            json.WriteNumber("readRoundTrips", traffic.ReadRoundTrips);
            json.WriteNumber("bytesRead", traffic.BytesRead);
            json.WriteNumber("writeRoundTrips", traffic.WriteRoundTrips);
            json.WriteNumber("writeGroups", traffic.WriteGroups);
            json.WriteNumber("valuesWritten", traffic.ValuesWritten);
            json.WriteNumber("bytesWritten", traffic.BytesWritten);
            json.WriteEndObject();
        }

        if (withSeries)
        {
            Timeline(json, result);
        }

        json.WriteEndObject();
    }

    private static void Timeline(Utf8JsonWriter json, ReplayResult result)
    {
        json.WriteStartObject("timeline");
        json.WriteNumber("windowSeconds", result.Timeline.Window.TotalSeconds);
        json.WriteStartObject("towers");
        foreach (var (model, cost) in result.Timeline.Towers)
        {
            json.WriteStartObject(model);
            json.WriteNumber("callMs", cost.PerCall.TotalMilliseconds);
            json.WriteNumber("userMs", cost.PerUser.TotalMilliseconds);
            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteStartArray("events");
        foreach (var e in result.Events)
        {
            json.WriteStartObject();
            json.WriteString("event", e.Event.Text);
            json.WriteString("label", e.Event.Label);
            json.WriteNumber("atSeconds", e.Event.At.TotalSeconds);
            json.WriteNumber("steadyInferenceRate", e.SteadyRate);
            Period(json, "before30m", e, e.Before);
            for (int i = 0; i < e.After.Count; i++)
            {
                Period(json, $"after{EventSummary.AfterLengths[i].TotalMinutes}m", e, e.After[i]);
            }

            WriteSeconds(json, "recoverySeconds", e.Recovery);

            WriteSeconds(json, "directRecoverySeconds", e.DirectRecovery);
            json.WriteNumber("servedAlthoughDeleted", e.StaleServes);
            if (e.Host is { } host)
            {
                json.WriteStartObject("restartedHost");
                Period(json, "before30m", host, host.Before);
                for (int i = 0; i < host.After.Count; i++)
                {
                    Period(json, $"after{EventSummary.AfterLengths[i].TotalMinutes}m", host, host.After[i]);
                }

                WriteSeconds(json, "recoverySeconds", host.Recovery);
                WriteSeconds(json, "directRecoverySeconds", host.DirectRecovery);
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteStartObject("series");
        foreach (var (model, series) in result.Series)
        {
            json.WriteStartArray(model);
            for (int i = 0; i < series.Windows.Count; i++)
            {
                var w = series.Windows[i];
                json.WriteStartObject();
                json.WriteNumber("startSeconds", i * series.WindowMs / 1000.0);
                foreach (var (name, value) in SeriesCsv.Columns(w))
                {
                    json.WriteNumber(name, value);
                }

                if (w.DriftMean is { } drift)
                {
                    json.WriteNumber("driftMean", drift);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void Period(Utf8JsonWriter json, string name, EventSummary e, PeriodFigures p)
    {
        json.WriteStartObject(name);
        json.WriteNumber("requests", p.Requests);
        json.WriteNumber("fallbacks", p.Fallbacks);
        json.WriteNumber("fallbackShare", p.FallbackShare);
        json.WriteNumber("inferenceRate", p.InferenceRate);
        json.WriteNumber("peakInferenceRate", p.PeakInferenceRate);
        if (e.PeakMultiple(p) is { } multiple)
        {
            json.WriteNumber("peakMultipleOfSteady", multiple);
        }

        json.WriteEndObject();
    }

    private static void Object(Utf8JsonWriter json, ModelReport r)
    {
        json.WriteStartObject();
        json.WriteNumber("requests", r.Requests);
        json.WriteNumber("directHits", r.DirectHits);
        json.WriteNumber("regionalHits", r.RegionalHits);
        json.WriteNumber("inferences", r.Inferences);
        json.WriteNumber("refreshes", r.Refreshes);
        json.WriteNumber("requestPathInferences", r.RequestPathInferences);
        json.WriteNumber("inferenceFailures", r.InferenceFailures);
        json.WriteNumber("failoverHits", r.FailoverHits);
        json.WriteNumber("fallbacks", r.Fallbacks);
        json.WriteNumber("computeSaved", r.ComputeSaved);
        json.WriteNumber("fallbackRate", r.FallbackRate);
        json.WriteNumber("fallbackRateWithoutCache", r.FallbackRateWithoutCache);
        Percentiles(json, r.AllAges());
        if (r.Drift.Count > 0)
        {
            json.WriteNumber("driftP50", r.Drift.Percentile(50)!.Value);
            json.WriteNumber("driftP99", r.Drift.Percentile(99)!.Value);
            json.WriteNumber("driftMean", r.Drift.Mean!.Value);
        }

        json.WriteStartObject("ageBySource");
        foreach (var (source, ages) in new[] { ("direct", r.DirectAges), ("regional", r.RegionalAges), ("fresh", r.FreshAges), ("failover", r.FailoverAges) })
        {
            json.WriteStartObject(source);
            json.WriteNumber("count", ages.Count);
            Percentiles(json, ages);
            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteStartObject("tiers");
        foreach (var (tier, peak) in new[] { ("direct", r.Direct), ("failover", r.Failover) })
        {
            json.WriteStartObject(tier);
            json.WriteNumber("peakEntries", peak.PeakEntries);
            json.WriteNumber("peakBytes", peak.PeakBytes);
            json.WriteEndObject();
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void Percentiles(Utf8JsonWriter json, AgeHistogram ages)
    {
        foreach (var (name, p) in new[] { ("ageP50Ms", 50.0), ("ageP90Ms", 90.0), ("ageP99Ms", 99.0) })
        {
            if (ages.Percentile(p) is long value)
            {
                json.WriteNumber(name, value);
            }
            else
            {
                json.WriteNull(name);
            }
        }
    }
}
