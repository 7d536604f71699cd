using ScottPlot;
using ERCache.Replay.Replay;

namespace ERCache.Replay.Output;

/// <summary>
/// The timeline as SVG, drawn with ScottPlot: per window of trace time, every model's inferences per second (request
/// path and background) and requests per second against the left axis, the share of requests that fell back against
/// the right axis, and a labelled vertical line at each event.
/// </summary>
internal static class TimelineChart
{
    private const int Width = 1100, Height = 520;

    public static string RenderSvg(string title, ReplayResult result)
    {
        var series = result.TotalSeries;
        if (series.Windows.Count == 0)
        {
            throw new ArgumentException("Nothing to plot: the replay has no windows.", nameof(result));
        }

        double seconds = series.WindowMs / 1000.0;
        double[] minutes = [.. Enumerable.Range(0, series.Windows.Count).Select(i => i * seconds / 60)];
        double[] inferences = [.. series.Windows.Select(w => w.Inferences / seconds)];
        double[] requests = [.. series.Windows.Select(w => w.Requests / seconds)];
        double[] fallback = [.. series.Windows.Select(w => w.Requests == 0 ? 0 : 100.0 * w.Fallback / w.Requests)];

        var plot = new Plot();
        plot.Title(title, size: 14);
        plot.XLabel("trace time (minutes)");
        plot.YLabel("per second");
        plot.Axes.Right.Label.Text = "requests that fell back (%)";
        var palette = new ScottPlot.Palettes.Category10();
        var requestLine = plot.Add.ScatterLine(minutes, requests, palette.GetColor(7));
        requestLine.LegendText = "requests/s";
        requestLine.LineWidth = 1;
        var inferenceLine = plot.Add.ScatterLine(minutes, inferences, palette.GetColor(0));
        inferenceLine.LegendText = "inferences/s (request path + background)";
        inferenceLine.LineWidth = 1.5f;
        var fallbackLine = plot.Add.ScatterLine(minutes, fallback, palette.GetColor(3));
        fallbackLine.LegendText = "fallback share (%)";
        fallbackLine.LineWidth = 1.5f;
        fallbackLine.Axes.YAxis = plot.Axes.Right;

        foreach (var e in result.Timeline.Events)
        {
            var line = plot.Add.VerticalLine(e.At.TotalMinutes, 1.5f, Colors.Black, LinePattern.Dashed);
            line.LabelText = e.Label; // at the bottom axis: the top holds the title
            if (e.Span > TimeSpan.Zero)
            {
                var end = plot.Add.VerticalLine((e.At + e.Span).TotalMinutes, 1, Colors.Gray, LinePattern.Dotted);
                end.LabelText = "end";
            }
        }

        plot.Axes.SetLimitsY(0, Math.Max(1, requests.Concat(inferences).Max()) * 1.1, plot.Axes.Left);
        plot.Axes.SetLimitsY(0, Math.Max(1, fallback.Max()) * 1.1, plot.Axes.Right);
        plot.ShowLegend(Alignment.UpperLeft);
        return plot.GetSvgXml(Width, Height);
    }
}
