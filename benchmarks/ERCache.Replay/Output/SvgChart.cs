using System.Globalization;
using System.Security;
using System.Text;

namespace ERCache.Replay.Output;

/// <summary>One line of a chart: points (x, y), drawn against the left or the right axis.</summary>
internal sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points, bool RightAxis = false);

/// <summary>
/// A small line-chart writer for the sweeps (no plotting package is available here): a plain SVG 1.1 document with
/// axes, ticks, a legend and up to two y axes; x may be logarithmic.
/// </summary>
internal static class SvgChart
{
    private const double Width = 720, Height = 420, Left = 70, Right = 70, Top = 40, Bottom = 60;
    private static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

    public static string Render(string title, string xLabel, string leftLabel, string? rightLabel, IReadOnlyList<Series> series, bool logX, Func<double, string> formatX)
    {
        var all = series.SelectMany(s => s.Points).ToList();
        if (all.Count == 0)
        {
            throw new ArgumentException("Nothing to plot.", nameof(series));
        }

        double xMin = all.Min(p => p.X), xMax = all.Max(p => p.X);
        Func<double, double> tx = logX ? Math.Log10 : x => x;
        double fx0 = tx(xMin), fx1 = tx(xMax) == tx(xMin) ? tx(xMin) + 1 : tx(xMax);
        (double Min, double Max) Range(bool right)
        {
            var ys = series.Where(s => s.RightAxis == right).SelectMany(s => s.Points).Select(p => p.Y).ToList();
            if (ys.Count == 0)
            {
                return (0, 1);
            }

            double max = ys.Max();
            return (Math.Min(0, ys.Min()), max <= 0 ? 1 : NiceCeiling(max));
        }

        var left = Range(false);
        var right = Range(true);
        double plotW = Width - Left - Right, plotH = Height - Top - Bottom;
        double X(double x) => Left + ((tx(x) - fx0) / (fx1 - fx0) * plotW);
        double Y(double y, (double Min, double Max) r) => Top + plotH - ((y - r.Min) / (r.Max - r.Min) * plotH);

        var svg = new StringBuilder();
        svg.Append(Inv($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        svg.Append(Inv($"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n"));
        svg.Append(Inv($"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>\n"));
        svg.Append(Inv($"<line x1=\"{Left}\" y1=\"{Top + plotH}\" x2=\"{Left + plotW}\" y2=\"{Top + plotH}\" stroke=\"black\"/>\n"));
        svg.Append(Inv($"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Top + plotH}\" stroke=\"black\"/>\n"));

        foreach (double x in all.Select(p => p.X).Distinct().Order())
        {
            svg.Append(Inv($"<line x1=\"{X(x):F1}\" y1=\"{Top + plotH}\" x2=\"{X(x):F1}\" y2=\"{Top + plotH + 5}\" stroke=\"black\"/>"));
            svg.Append(Inv($"<text x=\"{X(x):F1}\" y=\"{Top + plotH + 18}\" text-anchor=\"middle\">{Escape(formatX(x))}</text>\n"));
        }

        AxisTicks(svg, left, Left, -6, "end", y => Y(y, left), plotW, grid: true);
        svg.Append(Inv($"<text x=\"{Left + (plotW / 2)}\" y=\"{Height - 15}\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n"));
        svg.Append(Inv($"<text x=\"18\" y=\"{Top + (plotH / 2)}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {Top + (plotH / 2)})\">{Escape(leftLabel)}</text>\n"));
        if (rightLabel is not null)
        {
            svg.Append(Inv($"<line x1=\"{Left + plotW}\" y1=\"{Top}\" x2=\"{Left + plotW}\" y2=\"{Top + plotH}\" stroke=\"black\"/>\n"));
            AxisTicks(svg, right, Left + plotW, 6, "start", y => Y(y, right), plotW, grid: false);
            double rx = Width - 14;
            svg.Append(Inv($"<text x=\"{rx}\" y=\"{Top + (plotH / 2)}\" text-anchor=\"middle\" transform=\"rotate(90 {rx} {Top + (plotH / 2)})\">{Escape(rightLabel)}</text>\n"));
        }

        for (int i = 0; i < series.Count; i++)
        {
            var s = series[i];
            var range = s.RightAxis ? right : left;
            string color = Colors[i % Colors.Length];
            string points = string.Join(' ', s.Points.OrderBy(p => p.X).Select(p => Inv($"{X(p.X):F1},{Y(p.Y, range):F1}")));
            string dash = s.RightAxis ? " stroke-dasharray=\"6 4\"" : string.Empty;
            svg.Append(Inv($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{points}\"/>\n"));
            foreach (var p in s.Points)
            {
                svg.Append(Inv($"<circle cx=\"{X(p.X):F1}\" cy=\"{Y(p.Y, range):F1}\" r=\"3\" fill=\"{color}\"/>"));
            }

            double ly = Top + 12 + (i * 16);
            svg.Append(Inv($"\n<line x1=\"{Left + 12}\" y1=\"{ly - 4}\" x2=\"{Left + 36}\" y2=\"{ly - 4}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>"));
            svg.Append(Inv($"<text x=\"{Left + 42}\" y=\"{ly}\">{Escape(s.Name)}</text>\n"));
        }

        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static void AxisTicks(StringBuilder svg, (double Min, double Max) range, double x, double dx, string anchor, Func<double, double> y, double plotW, bool grid)
    {
        for (int i = 0; i <= 5; i++)
        {
            double value = range.Min + ((range.Max - range.Min) * i / 5);
            double py = y(value);
            if (grid)
            {
                svg.Append(Inv($"<line x1=\"{Left}\" y1=\"{py:F1}\" x2=\"{Left + plotW}\" y2=\"{py:F1}\" stroke=\"#ddd\"/>"));
            }

            svg.Append(Inv($"<text x=\"{x + dx:F1}\" y=\"{py + 4:F1}\" text-anchor=\"{anchor}\">{value:G4}</text>\n"));
        }
    }

    private static double NiceCeiling(double value)
    {
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (double step in new[] { 1, 2, 2.5, 5, 10 })
        {
            if (step * magnitude >= value)
            {
                return step * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private static string Escape(string text) => SecurityElement.Escape(text) ?? string.Empty;

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
