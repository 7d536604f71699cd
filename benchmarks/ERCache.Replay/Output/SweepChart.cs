using ScottPlot;

namespace ERCache.Replay.Output;

/// <summary>One line of a chart: points (x, y), drawn against the left or the right axis.</summary>
internal sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points, bool RightAxis = false);

/// <summary>
/// The sweeps' line charts, drawn with ScottPlot and written as SVG: a marker per point, a legend, an optional
/// right axis, series told apart by colour and marker shape, and a logarithmic x axis drawn as log10 of x with ticks labelled in x's own units.
/// </summary>
internal static class SweepChart
{
    private const int Width = 960, Height = 480;

    public static string RenderSvg(string title, string xLabel, string leftLabel, string? rightLabel, IReadOnlyList<Series> series, bool logX, Func<double, string> formatX)
    {
        if (series.All(s => s.Points.Count == 0))
        {
            throw new ArgumentException("Nothing to plot.", nameof(series));
        }

        Func<double, double> tx = logX ? Math.Log10 : x => x;
        var plot = new Plot();
        plot.Title(title, size: 15);
        plot.XLabel(xLabel);
        plot.YLabel(leftLabel);
        if (rightLabel is not null)
        {
            plot.Axes.Right.Label.Text = rightLabel;
        }

        var palette = new ScottPlot.Palettes.Category10();
        var markers = new[] { MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp, MarkerShape.FilledDiamond, MarkerShape.OpenCircle, MarkerShape.OpenSquare };
        for (int i = 0; i < series.Count; i++)
        {
            var s = series[i];
            var line = plot.Add.Scatter(s.Points.Select(p => tx(p.X)).ToArray(), s.Points.Select(p => p.Y).ToArray(), palette.GetColor(i));
            line.LegendText = s.Name;
            line.LineWidth = 2;
            line.MarkerSize = 8;
            line.MarkerShape = markers[i % markers.Length];
            if (s.RightAxis)
            {
                line.Axes.YAxis = plot.Axes.Right;
            }
        }

        // Ticks at the points' own x values, labelled in the sweep's units (10s, 1m, 5k, ...).
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (double x in series.SelectMany(s => s.Points).Select(p => p.X).Distinct().Order())
        {
            ticks.AddMajor(tx(x), formatX(x));
        }

        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Axes.Margins(0.05, 0.1);
        plot.ShowLegend(Alignment.LowerRight);
        return plot.GetSvgXml(Width, Height);
    }
}
