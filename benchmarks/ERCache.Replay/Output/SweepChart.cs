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

    /// <param name="logRight">Draw the right axis as log10 of its values too (labelled in its own units), for a measure
    /// that grows with a logarithmic x, such as the p99 age against the TTL; values at or below zero are left out.</param>
    public static string RenderSvg(
        string title, string xLabel, string leftLabel, string? rightLabel, IReadOnlyList<Series> series, bool logX, Func<double, string> formatX, bool logRight = false)
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
            var points = s.RightAxis && logRight ? s.Points.Where(p => p.Y > 0).ToList() : s.Points;
            Func<double, double> ty = s.RightAxis && logRight ? Math.Log10 : y => y;
            var line = plot.Add.Scatter(points.Select(p => tx(p.X)).ToArray(), points.Select(p => ty(p.Y)).ToArray(), palette.GetColor(i));
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
        if (logRight)
        {
            // Ticks at 1, 2 and 5 times each power of ten the right-axis values span, labelled in their units.
            var right = series.Where(s => s.RightAxis).SelectMany(s => s.Points).Select(p => p.Y).Where(y => y > 0).ToArray();
            if (right.Length > 0)
            {
                var rightTicks = new ScottPlot.TickGenerators.NumericManual();
                for (int decade = (int)Math.Floor(Math.Log10(right.Min())); decade <= (int)Math.Ceiling(Math.Log10(right.Max())); decade++)
                {
                    foreach (double step in new[] { 1.0, 2.0, 5.0 })
                    {
                        double value = step * Math.Pow(10, decade);
                        rightTicks.AddMajor(Math.Log10(value), value.ToString(value >= 1000 ? "N0" : "0.###", System.Globalization.CultureInfo.InvariantCulture));
                    }
                }

                plot.Axes.Right.TickGenerator = rightTicks;
            }
        }
        plot.Axes.Margins(0.05, 0.1);
        if (logRight && series.Where(s => s.RightAxis).SelectMany(s => s.Points).Where(p => p.Y > 0).Select(p => p.Y).ToArray() is { Length: > 0 } ys)
        {
            // A decade of room above and below, so the right axis's line does not sit on top of the left one's.
            plot.RenderManager.RenderStarting += (_, _) => plot.Axes.SetLimitsY(Math.Log10(ys.Min()) - 1, Math.Log10(ys.Max()) + 1, plot.Axes.Right);
        }
        plot.ShowLegend(Alignment.LowerRight);
        return plot.GetSvgXml(Width, Height);
    }
}
