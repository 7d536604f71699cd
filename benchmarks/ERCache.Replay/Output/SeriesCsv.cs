using System.Globalization;
using System.Text;
using ERCache.Replay.Replay;

namespace ERCache.Replay.Output;

/// <summary>The time series as CSV: one row per model and window, in trace time.</summary>
internal static class SeriesCsv
{
    /// <summary>The counted columns of a window, in the CSV's and the JSON's order.</summary>
    public static IEnumerable<(string Name, long Value)> Columns(SeriesWindow w) =>
    [
        ("requests", w.Requests), ("requestPathInferences", w.RequestPathInferences), ("backgroundInferences", w.BackgroundInferences),
        ("direct", w.Direct), ("regional", w.Regional), ("fresh", w.Fresh), ("failover", w.Failover), ("fallback", w.Fallback),
        ("deadlineMisses", w.DeadlineMisses), ("shed", w.Shed), ("maxQueue", w.MaxQueue),
    ];

    public static void Write(ReplayResult result, string path)
    {
        var sb = new StringBuilder();
        sb.Append("model,startSeconds");
        foreach (var (name, _) in Columns(new SeriesWindow()))
        {
            sb.Append(',').Append(name);
        }

        sb.AppendLine(",driftMean");
        foreach (var (model, series) in result.Series)
        {
            for (int i = 0; i < series.Windows.Count; i++)
            {
                var w = series.Windows[i];
                sb.Append(model).Append(',').Append((i * series.WindowMs / 1000.0).ToString(CultureInfo.InvariantCulture));
                foreach (var (_, value) in Columns(w))
                {
                    sb.Append(',').Append(value.ToString(CultureInfo.InvariantCulture));
                }

                sb.Append(',').AppendLine(w.DriftMean is { } d ? d.ToString("G6", CultureInfo.InvariantCulture) : "");
            }
        }

        File.WriteAllText(path, sb.ToString());
    }
}
