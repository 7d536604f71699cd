using System.Globalization;

/// <summary>A measure over rounds as the tables print it: one value when every round agreed, else low–high.</summary>
internal static class RangeText
{
    /// <summary>"-" for no values; an infinite value (a ratio to zero) prints as "inf".</summary>
    public static string Of(IEnumerable<double> values, string format, string unit)
    {
        var all = values.ToArray();
        if (all.Length == 0)
        {
            return "-";
        }

        string F(double v) => double.IsPositiveInfinity(v) ? "inf" : v.ToString(format, CultureInfo.InvariantCulture);
        string low = F(all.Min()), high = F(all.Max());
        return low == high ? $"{low}{unit}" : $"{low}–{high}{unit}";
    }
}
